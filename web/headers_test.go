package web_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pentecost/pentecost/web"
)

// TestCrossOriginOpenerPolicy checks that COOP is sent only where browsers
// honour it: on plain HTTP to a LAN name or address Chromium logs it as a
// console error on every page a phone opens.
func TestCrossOriginOpenerPolicy(t *testing.T) {
	h := web.NewHandler()
	for _, tc := range []struct {
		name, host, proto string
		tls, want         bool
	}{
		{name: "Localhost", host: "localhost:8080", want: true},
		{name: "Loopback", host: "127.0.0.1:8080", want: true},
		{name: "LoopbackV6", host: "[::1]:8080", want: true},
		{name: "HTTPS", host: "192.168.1.20:8443", tls: true, want: true},
		{name: "BehindTLSProxy", host: "live.example.org", proto: "https", want: true},
		{name: "LANAddress", host: "192.168.1.20:8080", want: false},
		{name: "LANName", host: "venue.test:8080", want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://"+tc.host+"/listen/golden-eagle-427", nil)
			if tc.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			if tc.tls {
				r = httptest.NewRequest("GET", "https://"+tc.host+"/", nil)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d", w.Code)
			}
			if got := w.Header().Get("Cross-Origin-Opener-Policy") != ""; got != tc.want {
				t.Fatalf("COOP sent = %v, want %v", got, tc.want)
			}
		})
	}
}
