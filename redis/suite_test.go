package redis_test

import (
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/redistest"
	"github.com/pentecost/pentecost/storetest"
)

// The suites every implementation passes, here against one real
// redis-server shared by the cases, each with its own key prefix.

func TestSessionServiceSuite(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunSessionServiceTests(t, func(t *testing.T, cfg storetest.SessionConfig) storetest.SessionSetup {
		clock := storetest.NewClock()
		prefix := newPrefix()
		db := MustOpenDBPrefix(t, srv, clock, prefix)
		configure := func(s *redis.SessionService) *redis.SessionService {
			s.MaxIdle, s.Retention, s.MaxIDAttempts, s.GenerateID = cfg.MaxIdle, cfg.Retention, cfg.MaxIDAttempts, cfg.GenerateID
			return s
		}
		return storetest.SessionSetup{
			Sessions: configure(redis.NewSessionService(db)),
			Clock:    clock,
			Reopen: func() pentecost.SessionService {
				return configure(redis.NewSessionService(MustOpenDBPrefix(t, srv, clock, prefix)))
			},
			Break: func() { db.Close() },
		}
	})
}

func TestUserStoreSuite(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunUserStoreTests(t, func(t *testing.T) storetest.UserSetup {
		clock := storetest.NewClock()
		db := MustOpenDB(t, srv, clock)
		return storetest.UserSetup{Users: redis.NewUserStore(db), Clock: clock, Break: func() { db.Close() }}
	})
}

func TestPresenceSuite(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunPresenceTests(t, func(t *testing.T) pentecost.Presence {
		return redis.NewPresence(MustOpenDB(t, srv, storetest.NewClock()))
	})
}

func TestBrokerSuite(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunBrokerTests(t, func(t *testing.T, cfg storetest.BrokerConfig, clock *storetest.Clock) pentecost.Broker {
		b := MustNewBroker(t, MustOpenDB(t, srv, clock))
		b.HistorySize, b.HistoryTTL = cfg.HistorySize, cfg.HistoryTTL
		return b
	})
}

func TestRateLimiterSuite(t *testing.T) {
	srv := redistest.Start(t)
	storetest.RunRateLimiterTests(t, func(t *testing.T, clock *storetest.Clock) pentecost.RateLimiter {
		return redis.NewRateLimiter(MustOpenDB(t, srv, clock))
	})
}
