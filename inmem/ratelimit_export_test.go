package inmem

// SetSweepHook makes l call fn at each sweep of idle keys.
func SetSweepHook(l *RateLimiter, fn func()) { l.onSweep = fn }
