package http

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/pentecost/pentecost"
)

// DefaultSessionMisses is how many lookups of unknown session IDs a client
// may make: 30 a minute. A person mistyping a code makes a few; a venue
// whose phones share one address looks up the one code that exists, and
// hits are not counted. There are about 59 million IDs (230 adjectives,
// 287 nouns, 900 numbers): at 30 guesses a minute one client needs some 13
// days to find one of 100 live sessions, where an unlimited one needed
// minutes (3,900 lookups a second were measured).
var DefaultSessionMisses = pentecost.Limit{Events: 30, Per: time.Minute}

// maxBlocked bounds the clients a LookupLimiter remembers as blocked; each
// had to make Events misses to get there.
const maxBlocked = 100_000

// LookupLimiter limits how many session IDs that do not exist a client may
// look up, so that IDs cannot be guessed at full speed. Misses are counted
// per client key with a RateLimiter (shared by the nodes when it is).
// Once a miss is refused, the client is refused every lookup, of a session
// that exists too, until its misses are under the limit again: otherwise
// "refused" against "found" would still answer the guess. That refusal is
// remembered by this LookupLimiter, i.e. per node (the API and the
// WebSocket endpoint of a node share one): a client over the limit gets at
// most one answer from each other node before its first refused miss there.
// It is safe for concurrent use.
type LookupLimiter struct {
	limiter pentecost.RateLimiter
	limit   pentecost.Limit
	now     func() time.Time

	mu      sync.Mutex
	blocked map[string]time.Time // client key → refused until
}

// NewLookupLimiter returns a limiter of misses counted by l; with a nil l or
// a zero limit nothing is limited.
func NewLookupLimiter(l pentecost.RateLimiter, limit pentecost.Limit) *LookupLimiter {
	return &LookupLimiter{limiter: l, limit: limit, now: time.Now, blocked: make(map[string]time.Time)}
}

func (l *LookupLimiter) off() bool { return l == nil || l.limiter == nil || l.limit.Zero() }

// Check returns ERATELIMIT, with RetryAfter, while client is refused
// lookups; call it before looking a session up.
func (l *LookupLimiter) Check(client string) error {
	if l.off() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	until, ok := l.blocked[client]
	if !ok {
		return nil
	}
	wait := until.Sub(l.now())
	if wait <= 0 {
		delete(l.blocked, client)
		return nil
	}
	return refused(wait)
}

// Done records the outcome of client's lookup: when err is
// SESSION_NOT_FOUND it counts a miss, and returns ERATELIMIT instead of err
// when that miss is over the limit. Other outcomes pass unchanged.
func (l *LookupLimiter) Done(ctx context.Context, client string, err error) error {
	if l.off() || pentecost.ErrorCode(err) != pentecost.ESESSIONNOTFOUND {
		return err
	}
	aerr := l.limiter.Allow(ctx, "session-miss:"+client, l.limit)
	if pentecost.ErrorCode(aerr) != pentecost.ERATELIMIT {
		return err // allowed, or the limiter could not answer: a lax limit beats refusing everyone
	}
	wait := pentecost.ErrorRetryAfter(aerr)
	now := l.now()
	l.mu.Lock()
	if len(l.blocked) >= maxBlocked {
		for k, until := range l.blocked {
			if !until.After(now) {
				delete(l.blocked, k)
			}
		}
	}
	if len(l.blocked) < maxBlocked {
		l.blocked[client] = now.Add(wait)
	}
	l.mu.Unlock()
	return refused(wait)
}

func refused(wait time.Duration) error {
	return &pentecost.Error{
		Code:       pentecost.ERATELIMIT,
		Message:    "Too many lookups of sessions that do not exist. Please try again later.",
		RetryAfter: wait,
	}
}

// lookup runs find, a lookup by session ID, under the client's miss limit:
// a client over it is refused without a lookup, and a miss that takes it
// over is refused too. The access log line of a miss or a refusal is at
// debug level: a guesser must not fill the log.
func (s *Server) lookup(r *http.Request, find func() error) error {
	client := s.clientKey(r)
	if err := s.Lookups.Check(client); err != nil {
		logAtDebug(r)
		return err
	}
	err := s.Lookups.Done(r.Context(), client, find())
	switch pentecost.ErrorCode(err) {
	case pentecost.ESESSIONNOTFOUND, pentecost.ERATELIMIT:
		logAtDebug(r)
	}
	return err
}

// LogAtDebug has the access log record r at debug level rather than info:
// for answers a client can have as often as it likes (a lookup of a
// session that does not exist, a refusal), which must not fill the log.
// Handlers mounted with Handle (the WebSocket endpoint) call it.
func LogAtDebug(r *http.Request) { logAtDebug(r) }

func logAtDebug(r *http.Request) {
	if info := infoFrom(r); info != nil {
		info.debug = true
	}
}
