package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/redistest"
	"github.com/pentecost/pentecost/storetest"
)

// services is every service of the package on one DB.
type services struct {
	db       *redis.DB
	sessions *redis.SessionService
	users    *redis.UserStore
	presence *redis.Presence
	broker   *redis.Broker
	limiter  *redis.RateLimiter
}

func newServices(t *testing.T, srv *redistest.Server) *services {
	db := MustOpenDB(t, srv, nil)
	b := MustNewBroker(t, db)
	b.SubscribeTimeout = time.Second
	return &services{db: db, sessions: redis.NewSessionService(db), users: redis.NewUserStore(db),
		presence: redis.NewPresence(db), broker: b, limiter: redis.NewRateLimiter(db)}
}

// calls returns one call of every method that talks to Redis.
func (s *services) calls(sessionID string) []struct {
	name string
	call func(ctx context.Context) error
} {
	key := pentecost.StreamKey{SessionID: sessionID, Language: "es"}
	alice := pentecost.NewContextWithUser(context.Background(), &pentecost.User{ID: "alice"})
	return []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Ping", s.db.Ping},
		{"CreateSession", func(ctx context.Context) error {
			return s.sessions.CreateSession(alice, &pentecost.Session{SourceLanguage: "en"})
		}},
		{"FindSessionByID", func(ctx context.Context) error { _, err := s.sessions.FindSessionByID(ctx, sessionID); return err }},
		{"FindSessions", func(ctx context.Context) error {
			_, _, err := s.sessions.FindSessions(ctx, pentecost.SessionFilter{Status: new(pentecost.SessionActive)})
			return err
		}},
		{"UpdateSession", func(ctx context.Context) error {
			_, err := s.sessions.UpdateSession(alice, sessionID, pentecost.SessionUpdate{})
			return err
		}},
		{"TouchSession", func(ctx context.Context) error { return s.sessions.TouchSession(ctx, sessionID) }},
		{"SetListenerCount", func(ctx context.Context) error { return s.sessions.SetListenerCount(ctx, sessionID, 1) }},
		{"ExpireSessions", func(ctx context.Context) error { _, err := s.sessions.ExpireSessions(ctx); return err }},
		{"PurgeSessions", func(ctx context.Context) error { _, err := s.sessions.PurgeSessions(ctx); return err }},
		{"FindUsers", func(ctx context.Context) error { _, err := s.users.FindUsers(ctx); return err }},
		{"Join", func(ctx context.Context) error {
			_, err := s.presence.Join(ctx, pentecost.PresenceEntry{SessionID: sessionID, ConnID: "c1", Language: "es"}, 10, false)
			return err
		}},
		{"Counts", func(ctx context.Context) error { _, err := s.presence.Counts(ctx, sessionID); return err }},
		{"Sessions", func(ctx context.Context) error { _, err := s.presence.Sessions(ctx); return err }},
		{"Refresh", func(ctx context.Context) error {
			_, err := s.presence.Refresh(ctx, sessionID, []pentecost.PresenceEntry{{SessionID: sessionID, ConnID: "c1", Language: "en"}})
			return err
		}},
		{"ClaimLanguage", func(ctx context.Context) error {
			_, err := s.presence.ClaimLanguage(ctx, sessionID, "es", "w1")
			return err
		}},
		{"Publish", func(ctx context.Context) error {
			return s.broker.Publish(ctx, key, &pentecost.Frame{Kind: pentecost.FrameAudio, Data: []byte{1}})
		}},
		{"History", func(ctx context.Context) error { _, _, err := s.broker.History(ctx, key, 0); return err }},
		{"Subscribe", func(ctx context.Context) error {
			unsub, err := s.broker.Subscribe(ctx, pentecost.StreamKey{SessionID: sessionID, Language: "fr"}, func(*pentecost.Frame) {})
			if err == nil {
				unsub()
			}
			return err
		}},
		{"DropSession", func(ctx context.Context) error { return s.broker.DropSession(ctx, "other-session-1") }},
		{"Allow", func(ctx context.Context) error {
			return s.limiter.Allow(ctx, "k", pentecost.Limit{Events: 1000, Per: time.Minute})
		}},
		{"SigningKey", func(ctx context.Context) error { _, err := s.db.LoadOrCreateSigningKey(ctx); return err }},
	}
}

// TestRedisDown stops Redis under every service: each call fails with
// EUNAVAILABLE, nothing else, and once Redis is back every call works
// again without any restart of the services.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	s := newServices(t, srv)
	alice := pentecost.NewContextWithUser(context.Background(), &pentecost.User{ID: "alice"})
	sess := &pentecost.Session{SourceLanguage: "en"}
	if err := s.sessions.CreateSession(alice, sess); err != nil {
		t.Fatal(err)
	}
	// A subscription made before the outage, so that the broker's reader
	// connection exists and sees the server go.
	c := storetest.NewCollector()
	unsub, err := s.broker.Subscribe(context.Background(), pentecost.StreamKey{SessionID: sess.ID, Language: "de"}, c.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	srv.Stop()
	t.Run("Unavailable", func(t *testing.T) {
		for _, tt := range s.calls(sess.ID) {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.call(context.Background())
				if pentecost.ErrorCode(err) != pentecost.EUNAVAILABLE || pentecost.ErrorMessage(err) != "Shared store unavailable." {
					t.Fatalf("err = %v, want EUNAVAILABLE", err)
				}
			})
		}
	})

	srv.Restart() // empty: the session is gone with the data
	waitReachable(t, s.db)
	t.Run("Recovered", func(t *testing.T) {
		sess2 := &pentecost.Session{SourceLanguage: "en"}
		if err := s.sessions.CreateSession(alice, sess2); err != nil {
			t.Fatal(err)
		}
		for _, tt := range s.calls(sess2.ID) {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.call(context.Background()); err != nil {
					t.Fatalf("err = %v after Redis came back", err)
				}
			})
		}
	})
}

// TestRedisRefuses has a running Redis refuse commands for lack of memory
// or of client slots: calls fail with EUNAVAILABLE, as when it is down,
// never with an internal error.
func TestRedisRefuses(t *testing.T) {
	ctx := context.Background()
	t.Run("OutOfMemory", func(t *testing.T) {
		srv := redistest.Start(t)
		s := newServices(t, srv)
		admin := s.db.Client()
		if err := admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
			t.Fatal(err)
		}
		if err := admin.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
			t.Fatal(err)
		}
		// Calls that only read, or whose script wrote before its first
		// command that needs memory, succeed; the others must not fail with
		// an internal error.
		mustRefuse := map[string]bool{"CreateSession": true, "Join": true, "Refresh": true, "SigningKey": true}
		for _, tt := range s.calls("golden-eagle-427") {
			err := tt.call(ctx)
			code := pentecost.ErrorCode(err)
			if code == pentecost.EINTERNAL || mustRefuse[tt.name] && code != pentecost.EUNAVAILABLE {
				t.Errorf("%s: err = %v, want EUNAVAILABLE", tt.name, err)
			}
		}
	})
	t.Run("MaxClients", func(t *testing.T) {
		srv := redistest.Start(t)
		db := MustOpenDB(t, srv, nil)
		admin := MustOpenDB(t, srv, nil).Client()
		// Only admin's connection stays: db must dial, and is refused.
		if err := admin.ConfigSet(ctx, "maxclients", "1").Err(); err != nil {
			t.Fatal(err)
		}
		if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
			t.Fatal(err)
		}
		// Redis writes its refusal and closes the connection: go-redis
		// reads the reply, or fails to write its handshake first.
		err := db.Ping(ctx)
		if pentecost.ErrorCode(err) != pentecost.EUNAVAILABLE {
			t.Fatalf("err = %v, want EUNAVAILABLE", err)
		}
	})
}

// redisReply is an error reply as go-redis returns it.
type redisReply string

func (e redisReply) Error() string { return string(e) }
func (e redisReply) RedisError()   {}

// TestUnavailableReplies checks the replies that mean Redis cannot serve
// for now. Whether a refused connection shows go-redis the max-clients
// reply or a broken pipe is a race, hence this test beside TestRedisRefuses.
func TestUnavailableReplies(t *testing.T) {
	for _, tt := range []struct {
		reply string
		want  bool
	}{
		{"OOM command not allowed when used memory > 'maxmemory'.", true},
		{"ERR max number of clients reached", true},
		{"LOADING Redis is loading the dataset in memory", true},
		{"READONLY You can't write against a read only replica.", true},
		{"ERR unknown command 'FOO'", false},
		{"WRONGTYPE Operation against a key holding the wrong kind of value", false},
	} {
		if got := redis.Unavailable(fmt.Errorf("wrapped: %w", redisReply(tt.reply))); got != tt.want {
			t.Errorf("%q: unavailable = %v, want %v", tt.reply, got, tt.want)
		}
	}
}
