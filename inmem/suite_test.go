package inmem_test

import (
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/inmem"
	"github.com/pentecost/pentecost/storetest"
)

func TestPresenceSuite(t *testing.T) {
	storetest.RunPresenceTests(t, func(t *testing.T) pentecost.Presence { return inmem.NewPresence() })
}

func TestBrokerSuite(t *testing.T) {
	storetest.RunBrokerTests(t, func(t *testing.T, cfg storetest.BrokerConfig, clock *storetest.Clock) pentecost.Broker {
		b := inmem.NewBroker()
		b.HistorySize, b.HistoryTTL, b.Now = cfg.HistorySize, cfg.HistoryTTL, clock.Now
		return b
	})
}

func TestRateLimiterSuite(t *testing.T) {
	storetest.RunRateLimiterTests(t, func(t *testing.T, clock *storetest.Clock) pentecost.RateLimiter {
		l := inmem.NewRateLimiter()
		l.Now = clock.Now
		return l
	})
}
