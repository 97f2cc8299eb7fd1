package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
)

// RateLimiterFactory returns a fresh RateLimiter using clock.
type RateLimiterFactory func(t *testing.T, clock *Clock) pentecost.RateLimiter

func allowN(tb testing.TB, l pentecost.RateLimiter, key string, limit pentecost.Limit, n int) {
	tb.Helper()
	for i := range n {
		if err := l.Allow(context.Background(), key, limit); err != nil {
			tb.Fatalf("event %d of %d: %v", i+1, n, err)
		}
	}
}

// mustDeny expects ERATELIMIT and returns its RetryAfter.
func mustDeny(tb testing.TB, l pentecost.RateLimiter, key string, limit pentecost.Limit) time.Duration {
	tb.Helper()
	err := l.Allow(context.Background(), key, limit)
	wantCode(tb, err, pentecost.ERATELIMIT)
	d := pentecost.ErrorRetryAfter(err)
	if d <= 0 || d > limit.Per {
		tb.Fatalf("RetryAfter = %v, want in (0, %v]", d, limit.Per)
	}
	return d
}

// RunRateLimiterTests runs the RateLimiter suite against fresh limiters
// from newLimiter. Times move in steps of a millisecond or more, the
// resolution every implementation keeps exactly.
func RunRateLimiterTests(t *testing.T, newLimiter RateLimiterFactory) {
	limit := pentecost.Limit{Events: 5, Per: time.Minute}

	t.Run("OK", func(t *testing.T) {
		l := newLimiter(t, NewClock())
		allowN(t, l, "k", limit, limit.Events)
	})

	t.Run("ErrRateLimit", func(t *testing.T) {
		l := newLimiter(t, NewClock())
		allowN(t, l, "k", limit, limit.Events)
		if d := mustDeny(t, l, "k", limit); d != limit.Per {
			t.Fatalf("RetryAfter = %v, want %v (all events at one instant)", d, limit.Per)
		}
		// A refusal records nothing: the wait does not grow.
		if d := mustDeny(t, l, "k", limit); d != limit.Per {
			t.Fatalf("second RetryAfter = %v, want %v", d, limit.Per)
		}
	})

	t.Run("AllowsAgainAfterRetryAfter", func(t *testing.T) {
		c := NewClock()
		l := newLimiter(t, c)
		allowN(t, l, "k", limit, limit.Events)
		d := mustDeny(t, l, "k", limit)
		c.Add(d - time.Millisecond)
		mustDeny(t, l, "k", limit)
		c.Add(time.Millisecond)
		allowN(t, l, "k", limit, limit.Events)
		mustDeny(t, l, "k", limit)
	})

	t.Run("SlidingWindow", func(t *testing.T) {
		c := NewClock()
		l := newLimiter(t, c)
		for range limit.Events {
			allowN(t, l, "k", limit, 1)
			c.Add(10 * time.Second)
		}
		// Events at 0,10,20,30,40 s; now is 50 s; the first leaves at 60 s.
		if d := mustDeny(t, l, "k", limit); d != 10*time.Second {
			t.Fatalf("RetryAfter = %v, want 10s", d)
		}
		c.Add(10 * time.Second)
		allowN(t, l, "k", limit, 1) // only one slot came free
		if d := mustDeny(t, l, "k", limit); d != 10*time.Second {
			t.Fatalf("RetryAfter = %v, want 10s", d)
		}
	})

	t.Run("NeverMoreThanEventsPerWindow", func(t *testing.T) {
		c := NewClock()
		l := newLimiter(t, c)
		allowN(t, l, "k", limit, limit.Events)
		c.Add(limit.Per / 2)
		if d := mustDeny(t, l, "k", limit); d != limit.Per/2 {
			t.Fatalf("RetryAfter = %v, want %v", d, limit.Per/2)
		}
	})

	t.Run("KeysIndependent", func(t *testing.T) {
		l := newLimiter(t, NewClock())
		allowN(t, l, "a", limit, limit.Events)
		mustDeny(t, l, "a", limit)
		allowN(t, l, "b", limit, limit.Events)
		mustDeny(t, l, "b", limit)
	})

	t.Run("ZeroLimitAllows", func(t *testing.T) {
		l := newLimiter(t, NewClock())
		for _, z := range []pentecost.Limit{{}, {Events: 0, Per: time.Minute}, {Events: 3, Per: 0}, {Events: -1, Per: time.Second}} {
			allowN(t, l, "k", z, 100)
		}
		// Nothing was recorded: the real limit still has all its room.
		allowN(t, l, "k", limit, limit.Events)
	})

	t.Run("ConcurrentNeverExceeds", func(t *testing.T) {
		l := newLimiter(t, NewClock())
		const callers = 40
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() { errs[i] = l.Allow(context.Background(), "k", limit) })
		}
		wg.Wait()
		allowed := 0
		for _, err := range errs {
			switch pentecost.ErrorCode(err) {
			case "":
				allowed++
			case pentecost.ERATELIMIT:
			default:
				t.Fatal(err)
			}
		}
		if allowed != limit.Events {
			t.Fatalf("%d allowed, want exactly %d", allowed, limit.Events)
		}
	})
}
