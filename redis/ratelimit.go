package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/pentecost/pentecost"
	goredis "github.com/redis/go-redis/v9"
)

// rateKeySlack keeps a rate-limit key in Redis this long past its window,
// so that Redis's expiry (its own clock) never forgets events the injected
// clock still counts.
const rateKeySlack = time.Minute

// RateLimiter implements pentecost.RateLimiter across nodes with the exact
// sliding window of inmem.RateLimiter: per key, a sorted set of the times
// (microseconds from DB.Now) of at most Events allowed events. A key is
// forgotten by Redis once its window and a minute more have passed.
type RateLimiter struct {
	db *DB
}

// NewRateLimiter returns a limiter on db.
func NewRateLimiter(db *DB) *RateLimiter { return &RateLimiter{db: db} }

// allowScript records an event at ARGV[1] unless ARGV[3] events already lie
// in the window (ARGV[1]-ARGV[2], ARGV[1]]; it returns -1 when allowed, or
// how long until the window has room again. Times are microseconds.
var allowScript = goredis.NewScript(`
local now, per, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
local c = redis.call('ZCARD', KEYS[1])
if c >= n then
  local e = redis.call('ZRANGE', KEYS[1], c - n, c - n, 'WITHSCORES')
  local retry = tonumber(e[2]) + per - now
  if retry > per then retry = per end
  return retry
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return -1`)

// Allow records one event for key unless the key already had limit.Events
// events in the last limit.Per, in which case it records nothing and
// returns ERATELIMIT with RetryAfter set, to the microsecond, to when the
// next event will be allowed. A zero limit always allows.
// Errors: ERATELIMIT, EUNAVAILABLE.
func (l *RateLimiter) Allow(ctx context.Context, key string, limit pentecost.Limit) error {
	if limit.Zero() {
		return nil
	}
	now := l.db.Now().UnixMicro()
	per := limit.Per.Microseconds()
	if per <= 0 {
		per = 1
	}
	// Events at one microsecond need distinct members.
	var b [8]byte
	_, _ = rand.Read(b[:])
	member := hex.EncodeToString(b[:])
	ttl := (limit.Per + rateKeySlack).Milliseconds()
	retry, err := allowScript.Run(ctx, l.db.client, []string{l.db.Prefix + "rate:" + key},
		now, per, limit.Events, member, ttl).Int64()
	if err != nil {
		return l.db.storeError(ctx, "rate limit", err)
	}
	if retry < 0 {
		return nil
	}
	return &pentecost.Error{
		Code:       pentecost.ERATELIMIT,
		Message:    "Too many requests. Please try again later.",
		RetryAfter: time.Duration(retry) * time.Microsecond,
	}
}

var _ pentecost.RateLimiter = (*RateLimiter)(nil)
