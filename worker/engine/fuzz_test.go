package engine_test

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker/engine"
)

// FuzzRetryAfter: whatever a service sends as Retry-After, the wait is
// never negative; a whole number of seconds is that long (as long as a
// Duration goes when it is longer), an HTTP date the time until it, and
// anything else no wait. The corpus is in testdata/fuzz.
func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, h string) {
		got := engine.RetryAfter(h, now)
		if got < 0 {
			t.Fatalf("RetryAfter(%q) = %v", h, got)
		}
		h = strings.TrimSpace(h)
		var want time.Duration
		if s, err := strconv.Atoi(h); err == nil {
			switch {
			case s < 0:
				want = 0
			case s > math.MaxInt64/int(time.Second):
				want = math.MaxInt64
			default:
				want = time.Duration(s) * time.Second
			}
		} else if d, err := http.ParseTime(h); err == nil {
			want = max(d.Sub(now), 0)
		}
		if got != want {
			t.Fatalf("RetryAfter(%q) = %v, want %v", h, got, want)
		}
	})
}
