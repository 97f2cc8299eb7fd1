// Package storetest holds the test suites every implementation of
// Pentecost's store, presence, broker and rate-limiter interfaces must
// pass: the in-memory and SQLite ones, and the Redis ones that serve
// several nodes. Each package's tests call RunXTests with a factory of
// fresh instances. Only tests import this package.
package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
)

// Clock is a settable clock shared by a test and the implementation under
// test. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts at a fixed time with sub-millisecond digits, so that
// stores that keep milliseconds have their truncation exercised.
func NewClock() *Clock {
	return &Clock{now: time.Date(2025, 6, 1, 9, 30, 0, 123456789, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Millis returns the clock's time at millisecond resolution, in UTC.
func (c *Clock) Millis() time.Time {
	return time.UnixMilli(c.Now().UnixMilli()).UTC()
}

// wantCode fails the test unless err carries code.
func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := pentecost.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

// as returns a context carrying the speaker with the given ID.
func as(id string) context.Context {
	return pentecost.NewContextWithUser(context.Background(), &pentecost.User{ID: id, Name: id, Issuer: pentecost.EmbeddedIssuer})
}

func ptr[T any](v T) *T { return &v }
