package http_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	phttp "github.com/pentecost/pentecost/http"
)

// TestServer_HealthChecksLogAtDebug: probes of /healthz and /readyz, which
// balancers send every few seconds, are logged at debug; other requests
// stay at info, and a failed readiness check still warns.
func TestServer_HealthChecksLogAtDebug(t *testing.T) {
	var down atomic.Bool
	ts := MustOpenServer(t, func(s *phttp.Server) {
		s.Ready = func(context.Context) error {
			if down.Load() {
				return errors.New("store unreachable")
			}
			return nil
		}
	})
	get := func(path, correlationID string, status int) {
		t.Helper()
		resp := ts.Do(t, Request{Method: "GET", Path: path, Header: map[string]string{"X-Correlation-ID": correlationID}})
		if resp.Status != status {
			t.Fatalf("GET %s: %d, want %d", path, resp.Status, status)
		}
	}
	get("/healthz", "probe-healthz", 200)
	get("/readyz", "probe-readyz", 200)
	down.Store(true)
	get("/readyz", "probe-readyz-down", 503)
	get("/languages", "not-a-probe", 200)
	get("/no-such-page", "unmatched", 404)

	// level returns the level of the access log record of a request, and
	// of its other records by message.
	level := func(correlationID, msg string) string {
		t.Helper()
		var found string
		waitFor(t, func() bool {
			for _, line := range strings.Split(ts.Logs.String(), "\n") {
				if !strings.Contains(line, `"`+correlationID+`"`) {
					continue
				}
				var rec map[string]any
				mustUnmarshal(t, []byte(line), &rec)
				if rec["msg"] == msg {
					found, _ = rec["level"].(string)
					return true
				}
			}
			return false
		})
		return found
	}
	for _, tc := range []struct{ id, msg, want string }{
		{"probe-healthz", "http request", "DEBUG"},
		{"probe-readyz", "http request", "DEBUG"},
		{"probe-readyz-down", "http request", "DEBUG"},
		{"probe-readyz-down", "not ready", "WARN"},
		{"not-a-probe", "http request", "INFO"},
		{"unmatched", "http request", "INFO"},
	} {
		if got := level(tc.id, tc.msg); got != tc.want {
			t.Errorf("%s %q logged at %s, want %s", tc.id, tc.msg, got, tc.want)
		}
	}
}
