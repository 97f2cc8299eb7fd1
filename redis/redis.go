// Package redis keeps Pentecost's shared state in Redis (or Valkey), so that
// several identical nodes behind a load balancer serve one session together:
// sessions and speaker accounts, listener presence and the listener cap,
// rate-limit counters, and each stream's numbering, history and fan-out
// between nodes. docs/redis.md describes the data model and the choices.
//
// Time comes from DB.Now, never from Redis's clock: expiry scores are times
// from Now, and Redis's own key expiry is only a safety net set far beyond
// the logical expiry, so that tests can move a clock.
package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pentecost/pentecost"
	goredis "github.com/redis/go-redis/v9"
)

// Log keys.
const (
	logKeyOp     = "op"
	logKeyError  = "error"
	logKeyStream = "stream"
)

// DefaultPrefix starts every key Pentecost writes, so that one Redis can be
// shared with other programs.
const DefaultPrefix = "pentecost:"

// minRedisMajor is the oldest Redis major version supported: sharded
// Pub/Sub (SPUBLISH) came with 7.0. Valkey reports a compatible version.
const minRedisMajor = 7

// unavailableMessage is what users read when Redis cannot be reached.
const unavailableMessage = "Shared store unavailable."

// DB is a connection to Redis shared by the services of this package.
// Set its fields before Open.
type DB struct {
	client  goredis.UniversalClient
	cluster bool

	// URL says where Redis is; see ParseURL for the accepted forms.
	URL string

	// Prefix starts every key (DefaultPrefix). It must not contain braces,
	// which Redis Cluster reads as hash tags.
	Prefix string

	// Now returns the current time. Tests replace it to move the clock.
	Now func() time.Time

	// Logger receives the causes of failures, which users never see.
	Logger *slog.Logger

	closeOnce sync.Once
}

// NewDB returns a DB for the Redis at url, with defaults set.
func NewDB(url string) *DB {
	return &DB{
		URL:    url,
		Prefix: DefaultPrefix,
		Now:    time.Now,
		Logger: slog.New(slog.DiscardHandler),
	}
}

// Open connects to Redis, checks once that it answers and is recent
// enough, and brings data stored by older versions up to date (accounts
// from before roles: see UserStore). A Redis that goes away later is not fatal: every call then fails
// with EUNAVAILABLE until it is back, and clients reconnect by themselves.
func (db *DB) Open() error {
	if db.Now == nil {
		db.Now = time.Now
	}
	if db.Logger == nil {
		db.Logger = slog.New(slog.DiscardHandler)
	}
	if strings.ContainsAny(db.Prefix, "{}") {
		return fmt.Errorf("redis: key prefix %q must not contain braces", db.Prefix)
	}
	cfg, err := ParseURL(db.URL)
	if err != nil {
		return err
	}
	db.client, db.cluster = cfg.newClient(), cfg.Cluster

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := db.client.Info(ctx, "server").Result()
	if err != nil {
		db.client.Close()
		return fmt.Errorf("redis: cannot reach %s: %w", cfg.Redacted, err)
	}
	if v := infoField(info, "redis_version"); majorVersion(v) < minRedisMajor {
		db.client.Close()
		return fmt.Errorf("redis: %s runs Redis %s; version %d.0 or newer (or Valkey) is required", cfg.Redacted, v, minRedisMajor)
	}
	// Data stored by older versions is brought up to date here, as the
	// SQLite store's migrations do at its Open.
	if err := NewUserStore(db).migrateRoles(ctx); err != nil {
		db.client.Close()
		return fmt.Errorf("redis: bring accounts under roles on %s: %w", cfg.Redacted, err)
	}
	return nil
}

// Close closes the connections. It is safe to call more than once.
func (db *DB) Close() error {
	var err error
	db.closeOnce.Do(func() {
		if db.client != nil {
			err = db.client.Close()
		}
	})
	return err
}

// Ping checks that Redis answers, for readiness probes.
// Errors: EUNAVAILABLE.
func (db *DB) Ping(ctx context.Context) error {
	if db.client == nil {
		return pentecost.Errorf(pentecost.EUNAVAILABLE, unavailableMessage)
	}
	return db.storeError(ctx, "ping", db.client.Ping(ctx).Err())
}

// Client returns the underlying client, for tests and diagnostics.
func (db *DB) Client() goredis.UniversalClient { return db.client }

// SetClientLogger sends the go-redis client's own messages (failed dials,
// reconnections) to l instead of standard error. It is process-wide: call
// it once, from main.
func SetClientLogger(l *slog.Logger) { goredis.SetLogger(clientLogger{l}) }

type clientLogger struct{ l *slog.Logger }

func (c clientLogger) Printf(ctx context.Context, format string, v ...any) {
	c.l.WarnContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// nowMillis returns the clock's time at the millisecond resolution sessions
// and accounts are stored with, so that what a method returns equals what a
// later read returns.
func (db *DB) nowMillis() time.Time { return fromMillis(db.Now().UnixMilli()) }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// storeError passes application errors and the caller's own cancellation
// through, and turns errors meaning Redis cannot serve into EUNAVAILABLE,
// logging the cause. Anything else is wrapped and stays internal.
func (db *DB) storeError(ctx context.Context, op string, err error) error {
	var e *pentecost.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return err
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return ctx.Err() // the caller gave up, which says nothing about Redis
	case unavailable(err):
		db.Logger.Error("shared store unavailable", logKeyOp, op, logKeyError, err)
		return pentecost.Errorf(pentecost.EUNAVAILABLE, unavailableMessage)
	}
	return fmt.Errorf("redis: %s: %w", op, err)
}

// unavailable reports whether err means Redis cannot serve requests now:
// any failure to talk to it, and the replies a server gives while loading,
// failing over or read-only, out of memory (maxmemory with noeviction) or
// out of client connections. Each passes once an operator or time has
// freed the server, so callers should try again later.
func unavailable(err error) bool {
	var redisErr goredis.Error
	if errors.As(err, &redisErr) {
		msg := redisErr.Error()
		for _, prefix := range []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY ", "NOREPLICAS", "MOVED", "ASK",
			"OOM ", "ERR max number of clients"} {
			if strings.HasPrefix(msg, prefix) {
				return true
			}
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, goredis.ErrClosed) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "connection pool timeout") || strings.Contains(err.Error(), "client is closed")
}

// infoField returns a field of an INFO reply.
func infoField(info, name string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

func majorVersion(v string) int {
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0
	}
	return n
}

// fieldError is EVALIDATIONFIELD naming the offending field.
func fieldError(field, msg string) error {
	return &pentecost.Error{Code: pentecost.EVALIDATIONFIELD, Message: msg, Details: map[string]string{"field": field}}
}
