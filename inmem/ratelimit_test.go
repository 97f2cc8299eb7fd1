package inmem_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/inmem"
)

// clock is a hand-moved clock safe for concurrent reads.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newLimiter(c *clock) *inmem.RateLimiter {
	l := inmem.NewRateLimiter()
	l.Now = c.Now
	return l
}

// allowN calls Allow n times and fails on the first refusal.
func allowN(t *testing.T, l *inmem.RateLimiter, key string, limit pentecost.Limit, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := l.Allow(context.Background(), key, limit); err != nil {
			t.Fatalf("event %d of %d: %v", i+1, n, err)
		}
	}
}

// mustDeny expects ERATELIMIT and returns its RetryAfter.
func mustDeny(t *testing.T, l *inmem.RateLimiter, key string, limit pentecost.Limit) time.Duration {
	t.Helper()
	err := l.Allow(context.Background(), key, limit)
	if code := pentecost.ErrorCode(err); code != pentecost.ERATELIMIT {
		t.Fatalf("code = %q, want %q", code, pentecost.ERATELIMIT)
	}
	d := pentecost.ErrorRetryAfter(err)
	if d <= 0 || d > limit.Per {
		t.Fatalf("RetryAfter = %v, want in (0, %v]", d, limit.Per)
	}
	return d
}

func TestRateLimiter_Allow(t *testing.T) {
	limit := pentecost.Limit{Events: 5, Per: time.Minute}

	t.Run("OK", func(t *testing.T) {
		c := newClock()
		l := newLimiter(c)
		allowN(t, l, "k", limit, limit.Events)
	})

	t.Run("ErrRateLimit", func(t *testing.T) {
		c := newClock()
		l := newLimiter(c)
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
		c := newClock()
		l := newLimiter(c)
		allowN(t, l, "k", limit, limit.Events)
		d := mustDeny(t, l, "k", limit)

		c.Add(d - time.Nanosecond)
		mustDeny(t, l, "k", limit)
		c.Add(time.Nanosecond)
		allowN(t, l, "k", limit, limit.Events)
		mustDeny(t, l, "k", limit)
	})

	t.Run("SlidingWindow", func(t *testing.T) {
		// Events spread over the window: RetryAfter is when the oldest leaves.
		c := newClock()
		l := newLimiter(c)
		for i := 0; i < limit.Events; i++ {
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
		// Half a window after a burst, a token bucket would refill; a
		// sliding window must still refuse.
		c := newClock()
		l := newLimiter(c)
		allowN(t, l, "k", limit, limit.Events)
		c.Add(limit.Per / 2)
		if d := mustDeny(t, l, "k", limit); d != limit.Per/2 {
			t.Fatalf("RetryAfter = %v, want %v", d, limit.Per/2)
		}
	})

	t.Run("KeysIndependent", func(t *testing.T) {
		c := newClock()
		l := newLimiter(c)
		allowN(t, l, "a", limit, limit.Events)
		mustDeny(t, l, "a", limit)
		allowN(t, l, "b", limit, limit.Events)
		mustDeny(t, l, "b", limit)
	})

	t.Run("ZeroLimitAllows", func(t *testing.T) {
		c := newClock()
		l := newLimiter(c)
		for _, z := range []pentecost.Limit{{}, {Events: 0, Per: time.Minute}, {Events: 3, Per: 0}} {
			allowN(t, l, "k", z, 1000)
		}
		if n := l.Len(); n != 0 {
			t.Fatalf("Len = %d, want 0: a zero limit records nothing", n)
		}
	})
}

func TestRateLimiter_Memory(t *testing.T) {
	limit := pentecost.Limit{Events: 2, Per: time.Minute}

	t.Run("IdleKeysForgotten", func(t *testing.T) {
		c := newClock()
		l := newLimiter(c)
		for i := 0; i < 100; i++ {
			allowN(t, l, fmt.Sprint("idle", i), limit, 1)
		}
		if n := l.Len(); n != 100 {
			t.Fatalf("Len = %d, want 100", n)
		}
		c.Add(limit.Per + l.SweepInterval)
		allowN(t, l, "fresh", limit, 1)
		if n := l.Len(); n != 1 {
			t.Fatalf("Len after sweep = %d, want 1", n)
		}
	})

	t.Run("MaxKeys", func(t *testing.T) {
		c := newClock()
		l := newLimiter(c)
		l.MaxKeys = 10
		allowN(t, l, "oldest", limit, limit.Events)
		for i := 0; i < 50; i++ {
			allowN(t, l, fmt.Sprint("k", i), limit, 1)
			if n := l.Len(); n > l.MaxKeys {
				t.Fatalf("Len = %d, want <= %d", n, l.MaxKeys)
			}
		}
		// The least recently used key was dropped, so it starts afresh.
		allowN(t, l, "oldest", limit, 1)
	})

	t.Run("RecentlyUsedKept", func(t *testing.T) {
		c := newClock()
		l := newLimiter(c)
		l.MaxKeys = 3
		allowN(t, l, "hot", limit, limit.Events)
		for i := 0; i < 10; i++ {
			mustDeny(t, l, "hot", limit) // use keeps it at the front
			allowN(t, l, fmt.Sprint("k", i), limit, 1)
		}
		mustDeny(t, l, "hot", limit)
	})
}

// TestRateLimiter_Kinds checks that room for a new key is made among the
// kind of key that holds the most, so that a flood of one kind (client
// addresses, made-up account names) cannot push out the counts of another
// (the sign-in backoff of a real account) and give it a fresh budget.
func TestRateLimiter_Kinds(t *testing.T) {
	full := pentecost.Limit{Events: 1, Per: time.Hour}

	t.Run("FloodPushesOutItsOwnKind", func(t *testing.T) {
		c := newClock()
		l := newLimiter(c)
		l.MaxKeys = 10
		allowN(t, l, "login-account:owner:daily", full, 1)
		for i := range 1000 {
			allowN(t, l, fmt.Sprint("login:198.18.", i/256, ".", i%256), full, 1)
			if n := l.Len(); n > l.MaxKeys {
				t.Fatalf("Len = %d, want <= %d", n, l.MaxKeys)
			}
			c.Add(time.Millisecond)
		}
		mustDeny(t, l, "login-account:owner:daily", full)
		// The flood's own oldest keys went: the first address starts afresh.
		allowN(t, l, "login:198.18.0.0", full, 1)
	})

	t.Run("LargestKindEvicted", func(t *testing.T) {
		c := newClock()
		l := newLimiter(c)
		l.MaxKeys = 6
		// b:1 is the least recently used key of all, but kind a holds more.
		for _, k := range []string{"b:1", "a:1", "a:2", "a:3", "a:4", "b:2"} {
			allowN(t, l, k, full, 1)
			c.Add(time.Millisecond)
		}
		allowN(t, l, "b:3", full, 1)
		for _, k := range []string{"b:1", "b:2", "b:3", "a:2", "a:3", "a:4"} {
			mustDeny(t, l, k, full)
		}
		allowN(t, l, "a:1", full, 1) // forgotten: a fresh budget
	})

	t.Run("TiesGoToLeastRecentlyUsed", func(t *testing.T) {
		c := newClock()
		l := newLimiter(c)
		l.MaxKeys = 3
		for _, k := range []string{"x:1", "y:1", "z:1", "w:1"} {
			allowN(t, l, k, full, 1)
			c.Add(time.Millisecond)
		}
		for _, k := range []string{"y:1", "z:1", "w:1"} {
			mustDeny(t, l, k, full)
		}
		allowN(t, l, "x:1", full, 1)
	})

	t.Run("KindsBounded", func(t *testing.T) {
		c := newClock()
		l := newLimiter(c)
		for i := range 200 {
			allowN(t, l, fmt.Sprint("kind", i, ":k"), full, 1)
		}
		if n := inmem.Kinds(l); n > 65 {
			t.Fatalf("%d kinds kept apart, want at most 65", n)
		}
		if n := l.Len(); n != 200 {
			t.Fatalf("Len = %d, want 200", n)
		}
		for i := range 200 {
			mustDeny(t, l, fmt.Sprint("kind", i, ":k"), full)
		}
		// Kinds go once their keys do.
		c.Add(full.Per + l.SweepInterval)
		allowN(t, l, "fresh:k", full, 1)
		if n := inmem.Kinds(l); n != 1 {
			t.Fatalf("%d kinds after the sweep, want 1", n)
		}
	})
}

// TestRateLimiter_KeyFlood checks that a flood of new keys at MaxKeys costs
// an eviction each, not a sweep of every key: sweeps stay at most one per
// SweepInterval, memory stays bounded and the newest keys keep their limits.
func TestRateLimiter_KeyFlood(t *testing.T) {
	limit := pentecost.Limit{Events: 2, Per: time.Hour}
	c := newClock()
	l := newLimiter(c)
	l.MaxKeys = 10
	var sweeps int
	inmem.SetSweepHook(l, func() { sweeps++ }) // called under l's lock

	flood := func(prefix string, n int) {
		t.Helper()
		for i := range n {
			allowN(t, l, fmt.Sprint(prefix, i), limit, limit.Events)
			if got := l.Len(); got > l.MaxKeys {
				t.Fatalf("Len = %d, want <= %d", got, l.MaxKeys)
			}
			c.Add(time.Millisecond)
		}
	}

	flood("a", 1000) // one second in all, well within SweepInterval
	if sweeps != 0 {
		t.Fatalf("sweeps = %d within the first interval, want 0", sweeps)
	}
	// The most recent keys are still remembered, and limited.
	for i := 1000 - l.MaxKeys; i < 1000; i++ {
		mustDeny(t, l, fmt.Sprint("a", i), limit)
	}

	c.Add(l.SweepInterval)
	flood("b", 1000)
	if sweeps != 1 {
		t.Fatalf("sweeps = %d after one interval, want 1", sweeps)
	}
	for i := 1000 - l.MaxKeys; i < 1000; i++ {
		mustDeny(t, l, fmt.Sprint("b", i), limit)
	}
}

func TestRateLimiter_Concurrent(t *testing.T) {
	c := newClock()
	l := newLimiter(c)
	l.MaxKeys = 8
	limit := pentecost.Limit{Events: 100, Per: time.Minute}

	const workers, each = 8, 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := make(map[string]int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				key := fmt.Sprint("k", i%4)
				err := l.Allow(context.Background(), key, limit)
				switch pentecost.ErrorCode(err) {
				case "":
					mu.Lock()
					allowed[key]++
					mu.Unlock()
				case pentecost.ERATELIMIT:
				default:
					t.Errorf("Allow: %v", err)
				}
				if i%50 == 0 {
					c.Add(time.Millisecond)
				}
			}
		}(w)
	}
	wg.Wait()
	// 1600 attempts over 4 keys within far less than a minute: exactly
	// Events each got through.
	for k, n := range allowed {
		if n != limit.Events {
			t.Errorf("key %s: allowed %d, want %d", k, n, limit.Events)
		}
	}
	if len(allowed) != 4 {
		t.Fatalf("keys = %d, want 4", len(allowed))
	}
}
