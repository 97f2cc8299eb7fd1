package inmem

// SetSweepHook makes l call fn at each sweep of idle keys.
func SetSweepHook(l *RateLimiter, fn func()) { l.onSweep = fn }

// Kinds returns how many kinds of key l keeps apart.
func Kinds(l *RateLimiter) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.kinds)
}
