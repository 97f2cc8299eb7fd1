package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/redistest"
)

func TestParseURL(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		for _, tt := range []struct {
			url   string
			check func(t *testing.T, c *redis.Config)
		}{
			{"redis://127.0.0.1:6379/2", func(t *testing.T, c *redis.Config) {
				if c.Single == nil || c.Single.Addr != "127.0.0.1:6379" || c.Single.DB != 2 || c.Single.TLSConfig != nil {
					t.Fatalf("single = %+v", c.Single)
				}
				if c.Single.DialTimeout != 2*time.Second || c.Single.MaxRetries != 2 {
					t.Fatalf("defaults not applied: dial %v, retries %d", c.Single.DialTimeout, c.Single.MaxRetries)
				}
			}},
			{"rediss://user:secret@cache.example:6380?dial_timeout=5s&max_retries=4", func(t *testing.T, c *redis.Config) {
				o := c.Single
				if o == nil || o.TLSConfig == nil || o.Username != "user" || o.Password != "secret" || o.DialTimeout != 5*time.Second || o.MaxRetries != 4 {
					t.Fatalf("single = %+v", o)
				}
				if strings.Contains(c.Redacted, "secret") {
					t.Fatalf("redacted URL %q shows the password", c.Redacted)
				}
			}},
			{"redis-sentinel://:pw@s1:26379,s2,s3:26380/mymaster/3?sentinel_password=spw", func(t *testing.T, c *redis.Config) {
				o := c.Failover
				if o == nil || o.MasterName != "mymaster" || o.DB != 3 || o.Password != "pw" || o.SentinelPassword != "spw" {
					t.Fatalf("failover = %+v", o)
				}
				if want := []string{"s1:26379", "s2:26379", "s3:26380"}; strings.Join(o.SentinelAddrs, ",") != strings.Join(want, ",") {
					t.Fatalf("sentinels = %v, want %v", o.SentinelAddrs, want)
				}
			}},
			{"redis-sentinel://s1/mymaster?db=1", func(t *testing.T, c *redis.Config) {
				if c.Failover == nil || c.Failover.DB != 1 || c.Failover.MasterName != "mymaster" {
					t.Fatalf("failover = %+v", c.Failover)
				}
			}},
			{"rediss-cluster://u:p@n1:7000,n2:7001,n3", func(t *testing.T, c *redis.Config) {
				if !c.Cluster || c.Single != nil || c.Failover != nil {
					t.Fatalf("config = %+v, want a cluster", c)
				}
			}},
		} {
			t.Run(tt.url, func(t *testing.T) {
				c, err := redis.ParseURL(tt.url)
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, c)
			})
		}
	})

	t.Run("Err", func(t *testing.T) {
		for _, u := range []string{
			"",
			"http://host:6379",
			"redis-sentinel://s1:26379",          // no master name
			"redis-sentinel://s1:26379/m/0/x",    // too much path
			"redis-cluster://n1:7000/2",          // a cluster has no db
			"redis-mesh://n1",                    // unknown kind
			"redis://host:6379?no_such_option=1", // go-redis refuses unknown options
			"redis://:secret@host:6379?no_such_option=1",
		} {
			t.Run(u, func(t *testing.T) {
				_, err := redis.ParseURL(u)
				if err == nil {
					t.Fatal("parsed")
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error %q shows the password", err)
				}
			})
		}
	})
}

func TestDB_Open(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		srv := redistest.Start(t)
		db := MustOpenDB(t, srv, nil)
		if err := db.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrUnreachable", func(t *testing.T) {
		srv := redistest.Start(t)
		url := srv.URL()
		srv.Stop()
		db := redis.NewDB(url)
		err := db.Open()
		if err == nil {
			db.Close()
			t.Fatal("opened a stopped server")
		}
		if !strings.Contains(err.Error(), "cannot reach") {
			t.Fatalf("err = %v, want a clear message", err)
		}
	})
	t.Run("ErrPrefix", func(t *testing.T) {
		db := redis.NewDB("redis://127.0.0.1:1")
		db.Prefix = "a{b}:"
		if err := db.Open(); err == nil || !strings.Contains(err.Error(), "braces") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ErrURL", func(t *testing.T) {
		if err := redis.NewDB("memcached://x").Open(); err == nil {
			t.Fatal("opened")
		}
	})
}

func TestDB_Ping(t *testing.T) {
	srv := redistest.Start(t)
	db := MustOpenDB(t, srv, nil)
	srv.Stop()
	err := db.Ping(context.Background())
	if pentecost.ErrorCode(err) != pentecost.EUNAVAILABLE || pentecost.ErrorMessage(err) != "Shared store unavailable." {
		t.Fatalf("err = %v", err)
	}
	srv.Restart()
	waitReachable(t, db)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.Ping(ctx); err != context.Canceled {
		t.Fatalf("Ping with a cancelled context = %v, want context.Canceled", err)
	}
}

// waitReachable polls until db answers again after a restart.
func waitReachable(tb testing.TB, db *redis.DB) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for db.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			tb.Fatal("Redis not reachable again within 15s")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}
