package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	"github.com/pentecost/pentecost/inmem"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/sqlite"
)

// stores is the state a node keeps: in this process and its data dir (one
// node), or in Redis (several nodes). Main picks one here and nowhere else.
type stores struct {
	users    pentecost.UserStore
	key      ed25519.PrivateKey
	presence pentecost.Presence
	broker   pentecost.Broker
	limiter  pentecost.RateLimiter
	ping     func(context.Context) error
	// refresh is how often the node refreshes its presence in the shared
	// store; 0 for one node, whose presence has nothing to expire.
	refresh time.Duration
}

// openStores opens the embedded store or, with --redis, the shared one, and
// sets m.DB or m.Redis and m.Sessions.
func (m *Main) openStores(ctx context.Context) (*stores, error) {
	cfg := m.Config
	if cfg.RedisURL != "" {
		return m.openRedis(ctx)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	m.DB = sqlite.NewDB(filepath.Join(cfg.DataDir, dbFile))
	m.DB.Logger = m.Logger.With("component", "sqlite")
	if err := m.DB.Open(); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	sessions := sqlite.NewSessionService(m.DB)
	sessions.MaxIdle = cfg.SessionMaxIdle
	sessions.Retention = cfg.Retention
	m.Sessions = sessions

	key, err := auth.LoadOrCreateKey(filepath.Join(cfg.DataDir, signingKeyFile))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	// One node: presence, broker and limits live in this process.
	return &stores{
		users:    sqlite.NewUserStore(m.DB),
		key:      key,
		presence: inmem.NewPresence(),
		broker:   inmem.NewBroker(),
		limiter:  inmem.NewRateLimiter(),
		ping:     m.DB.Ping,
	}, nil
}

// openRedis opens the Redis shared by every node of a deployment.
func (m *Main) openRedis(ctx context.Context) (*stores, error) {
	cfg := m.Config
	redis.SetClientLogger(m.Logger.With("component", "go-redis"))
	m.Redis = redis.NewDB(cfg.RedisURL)
	m.Redis.Logger = m.Logger.With("component", "redis")
	if err := m.Redis.Open(); err != nil {
		return nil, err // names the host, never the password
	}
	sessions := redis.NewSessionService(m.Redis)
	sessions.MaxIdle = cfg.SessionMaxIdle
	sessions.Retention = cfg.Retention
	m.Sessions = sessions

	key, err := m.Redis.LoadOrCreateSigningKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	presence := redis.NewPresence(m.Redis)
	presence.EntryTTL = cfg.PresenceTTL
	return &stores{
		users:    redis.NewUserStore(m.Redis),
		key:      key,
		presence: presence,
		broker:   redis.NewBroker(m.Redis),
		limiter:  redis.NewRateLimiter(m.Redis),
		ping:     m.Redis.Ping,
		// Three refreshes per TTL: one lost refresh never expires a live node.
		refresh: cfg.PresenceTTL / 3,
	}, nil
}

// redisUpGauge reports whether Redis answers, checked at each scrape.
func redisUpGauge(db *redis.DB) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pentecost_redis_up",
		Help: "1 if the shared Redis answered a PING at this scrape, 0 if not.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if db.Ping(ctx) != nil {
			return 0
		}
		return 1
	})
}

// redactedRedisURL is a Redis URL fit for logs: without its password.
func redactedRedisURL(raw string) string {
	cfg, err := redis.ParseURL(raw)
	if err != nil {
		return "(invalid)"
	}
	return cfg.Redacted
}
