package redis_test

import (
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"

	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/redistest"
	"github.com/pentecost/pentecost/storetest"
)

var prefixes atomic.Int64

// newPrefix returns a key prefix no other test uses, so that tests can
// share one server and still start empty.
func newPrefix() string { return fmt.Sprintf("test%d:", prefixes.Add(1)) }

// MustOpenDB opens a DB on srv with clock and a fresh key prefix, and
// closes it when the test ends.
func MustOpenDB(tb testing.TB, srv *redistest.Server, clock *storetest.Clock) *redis.DB {
	tb.Helper()
	return MustOpenDBPrefix(tb, srv, clock, newPrefix())
}

// MustOpenDBPrefix opens a DB on srv with clock and the given key prefix:
// two DBs with one prefix are two nodes sharing state.
func MustOpenDBPrefix(tb testing.TB, srv *redistest.Server, clock *storetest.Clock, prefix string) *redis.DB {
	tb.Helper()
	db := redis.NewDB(srv.URL())
	db.Prefix = prefix
	if clock != nil {
		db.Now = clock.Now
	}
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// MustNewBroker returns a broker on db, closed when the test ends (before db).
func MustNewBroker(tb testing.TB, db *redis.DB) *redis.Broker {
	tb.Helper()
	b := redis.NewBroker(db)
	tb.Cleanup(func() { b.Close() })
	return b
}

func TestMain(m *testing.M) {
	// Failure tests make the client log every failed dial.
	redis.SetClientLogger(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}
