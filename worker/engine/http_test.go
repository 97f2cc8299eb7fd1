package engine_test

import (
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker/engine"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"Seconds", "7", 7 * time.Second},
		{"SecondsSpaces", " 3 ", 3 * time.Second},
		{"Negative", "-5", 0},
		{"HTTPDate", "Sun, 06 Dec 2026 10:00:30 GMT", 30 * time.Second},
		{"PastDate", "Sun, 06 Dec 2026 09:00:00 GMT", 0},
		{"Empty", "", 0},
		{"Garbage", "soon", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := engine.RetryAfter(tc.header, now); got != tc.want {
				t.Fatalf("RetryAfter(%q) = %s, want %s", tc.header, got, tc.want)
			}
		})
	}
}

func TestStatusCode(t *testing.T) {
	for status, want := range map[int]string{429: engine.ErrThrottled, 408: engine.ErrTimeout, 504: engine.ErrTimeout,
		500: engine.ErrUnavailable, 503: engine.ErrUnavailable, 404: engine.ErrUnsupported, 401: engine.ErrRefused, 400: engine.ErrRefused} {
		if got := engine.StatusCode(status); got != want {
			t.Errorf("StatusCode(%d) = %s, want %s", status, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	for i := range 20 {
		d := engine.Backoff(250*time.Millisecond, 2*time.Second, i)
		full := min(250*time.Millisecond<<i, 2*time.Second)
		if d < full/2 || d > full {
			t.Fatalf("Backoff(%d) = %s, want between %s and %s", i, d, full/2, full)
		}
	}
}
