// Package inmem holds implementations of Pentecost's services that live in
// the memory of one process. They serve a single node; a shared store takes
// their place when several nodes must agree.
package inmem

import (
	"container/list"
	"context"
	"strings"
	"sync"
	"time"

	"github.com/pentecost/pentecost"
)

// Defaults for a new RateLimiter.
const (
	// DefaultMaxKeys bounds how many keys are remembered at once.
	DefaultMaxKeys = 100_000
	// DefaultSweepInterval is how often idle keys are swept away.
	DefaultSweepInterval = time.Minute

	// maxKinds bounds the kinds of key kept apart; keys of further kinds
	// share one, so that choosing where to evict stays cheap whatever the
	// keys look like. The program has about ten kinds.
	maxKinds = 64
	// maxKindLen bounds the text taken as a key's kind.
	maxKindLen = 32
)

// RateLimiter implements pentecost.RateLimiter with an exact sliding window
// per key: it remembers the times of the last Events allowed events, so a key
// never gets more than Events in any window of length Per, and RetryAfter is
// exactly when the oldest counted event leaves the window.
//
// Memory is bounded: a key whose events have all left its window is forgotten
// by a lazy sweep, at most once per SweepInterval, and at most MaxKeys keys
// are remembered, each costing at most Events timestamps.
//
// Forgetting a key that still counts events gives its client a fresh
// budget, so keys are told apart by kind: the text before the first ':'
// ("login", "login-account", "ws-conn"). When MaxKeys keys are remembered,
// room for a new one is made by dropping the least recently used key of the
// kind holding the most keys, in time proportional to the number of kinds
// (about ten), so that a flood of new keys costs no more per call than any
// other traffic. A flood of one kind (new client addresses, made-up account
// names) thus pushes out only keys of its own kind, and a kind with fewer
// than MaxKeys/kinds keys, such as the sign-in backoff of the accounts that
// exist, is never pushed out.
// It is safe for concurrent use.
type RateLimiter struct {
	// Now returns the current time. Tests replace it to move time.
	Now func() time.Time

	// MaxKeys is the most keys remembered at once (DefaultMaxKeys).
	MaxKeys int

	// SweepInterval is how often Allow sweeps idle keys (DefaultSweepInterval).
	SweepInterval time.Duration

	mu        sync.Mutex
	keys      map[string]*list.Element // of *window, in its kind's list
	kinds     map[string]*list.List    // by kind, front: most recently used
	base      time.Time                // origin of the int64 offsets below
	baseSet   bool
	lastSweep int64

	// onSweep, if set, is called at each sweep (tests).
	onSweep func()
}

// window is the event log of one key, as offsets from RateLimiter.base in
// nanoseconds, oldest first.
type window struct {
	key    string
	kind   string
	per    time.Duration
	used   int64 // when Allow last saw the key
	events []int64
}

// NewRateLimiter returns a limiter using the wall clock and default bounds.
func NewRateLimiter() *RateLimiter {
	return &RateLimiter{
		Now:           time.Now,
		MaxKeys:       DefaultMaxKeys,
		SweepInterval: DefaultSweepInterval,
		keys:          make(map[string]*list.Element),
		kinds:         make(map[string]*list.List),
	}
}

// Allow records one event for key unless the key already had limit.Events
// events in the last limit.Per, in which case it records nothing and returns
// ERATELIMIT with RetryAfter set to when the next event will be allowed.
// A zero limit always allows and records nothing.
func (l *RateLimiter) Allow(ctx context.Context, key string, limit pentecost.Limit) error {
	if limit.Zero() {
		return nil
	}

	l.mu.Lock()
	defer l.mu.Unlock()

	now := l.offset(l.Now())
	per := int64(limit.Per)

	if now-l.lastSweep >= int64(l.SweepInterval) {
		l.sweep(now)
		l.lastSweep = now
	}

	var w *window
	if e, ok := l.keys[key]; ok {
		w = e.Value.(*window)
		l.kinds[w.kind].MoveToFront(e)
	} else {
		// The sweep above has just run if it was due; sweeping again for
		// every new key would make each call O(keys) under the lock.
		for l.MaxKeys > 0 && len(l.keys) >= l.MaxKeys {
			l.remove(l.evictable().Back())
		}
		w = &window{key: key, kind: l.kindOf(key)}
		lru := l.kinds[w.kind]
		if lru == nil {
			lru = list.New()
			l.kinds[w.kind] = lru
		}
		l.keys[key] = lru.PushFront(w)
	}
	w.per = limit.Per
	w.used = now

	// Forget events that have left the window (now-per, now].
	i := 0
	for i < len(w.events) && w.events[i] <= now-per {
		i++
	}
	if i > 0 {
		w.events = append(w.events[:0], w.events[i:]...)
	}

	if n := len(w.events); n >= limit.Events {
		// The window has room again once event n-Events has left it.
		retry := time.Duration(w.events[n-limit.Events] + per - now)
		if retry > limit.Per { // only if the clock went backwards
			retry = limit.Per
		}
		return &pentecost.Error{
			Code:       pentecost.ERATELIMIT,
			Message:    "Too many requests. Please try again later.",
			RetryAfter: retry,
		}
	}
	w.events = append(w.events, now)
	return nil
}

// Len returns how many keys are remembered, for tests and metrics.
func (l *RateLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// offset turns t into nanoseconds since the first time seen, which keeps the
// monotonic clock reading when t comes from time.Now.
func (l *RateLimiter) offset(t time.Time) int64 {
	if !l.baseSet {
		l.base, l.baseSet = t, true
		l.lastSweep = 0
	}
	return int64(t.Sub(l.base))
}

// kindOf returns the kind a new key is kept with: the text before its
// first ':', or "" when there is none, it is too long, or maxKinds kinds
// are already kept.
func (l *RateLimiter) kindOf(key string) string {
	kind, _, ok := strings.Cut(key, ":")
	if !ok || len(kind) > maxKindLen {
		return ""
	}
	if _, kept := l.kinds[kind]; !kept && len(l.kinds) >= maxKinds {
		return ""
	}
	return kind
}

// evictable returns the list of the kind holding the most keys; among
// kinds holding as many, the one whose least recently used key was used
// longest ago, then the first by name.
func (l *RateLimiter) evictable() *list.List {
	var best *list.List
	var bestKind string
	for kind, lru := range l.kinds {
		if best == nil || lru.Len() > best.Len() {
			best, bestKind = lru, kind
			continue
		}
		if lru.Len() < best.Len() {
			continue
		}
		a, b := lru.Back().Value.(*window).used, best.Back().Value.(*window).used
		if a < b || a == b && kind < bestKind {
			best, bestKind = lru, kind
		}
	}
	return best
}

// sweep forgets every key whose newest event has left its window.
func (l *RateLimiter) sweep(now int64) {
	if l.onSweep != nil {
		l.onSweep()
	}
	for _, lru := range l.kinds {
		for e := lru.Back(); e != nil; {
			prev := e.Prev()
			w := e.Value.(*window)
			if n := len(w.events); n == 0 || w.events[n-1] <= now-int64(w.per) {
				l.remove(e)
			}
			e = prev
		}
	}
}

// remove forgets the key of e, and its kind once it has no keys left.
func (l *RateLimiter) remove(e *list.Element) {
	w := e.Value.(*window)
	lru := l.kinds[w.kind]
	lru.Remove(e)
	delete(l.keys, w.key)
	if lru.Len() == 0 {
		delete(l.kinds, w.kind)
	}
}

var _ pentecost.RateLimiter = (*RateLimiter)(nil)
