package pentecost

import (
	"context"
	"time"
)

// Limit is a rate: at most Events in any window of length Per.
type Limit struct {
	Events int
	Per    time.Duration
}

// Zero reports whether the limit is disabled.
func (l Limit) Zero() bool { return l.Events <= 0 || l.Per <= 0 }

// RateLimiter counts events per key (a speaker, an IP, a connection) and
// says when a key has used up its limit. The in-memory implementation serves
// one node; a shared one makes limits hold across nodes.
type RateLimiter interface {
	// Allow records one event for key. When the key is over its limit it
	// records nothing and returns ERATELIMIT with RetryAfter set.
	// A zero limit always allows. Errors: ERATELIMIT, EUNAVAILABLE.
	Allow(ctx context.Context, key string, limit Limit) error
}
