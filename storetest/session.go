package storetest

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sessionid"
)

// The configuration the suite gives every SessionService.
const (
	SuiteMaxIdle       = 4 * time.Hour
	SuiteRetention     = 24 * time.Hour
	SuiteMaxIDAttempts = 10
	// MaxSpeakerStateLen is the longest speaker state every store accepts.
	MaxSpeakerStateLen = 64
)

// SessionConfig configures a SessionService under test; the factory copies
// each field into the implementation's field of the same name.
type SessionConfig struct {
	MaxIdle       time.Duration
	Retention     time.Duration
	MaxIDAttempts int
	GenerateID    func() string
}

// SessionSetup is a fresh, empty SessionService and what the suite needs
// around it.
type SessionSetup struct {
	Sessions pentecost.SessionService
	// Clock is the service's clock.
	Clock *Clock
	// Reopen returns a second service on the same data (a restart,
	// or another node), with the same configuration.
	Reopen func() pentecost.SessionService
	// Break makes the store unreachable for the rest of the test.
	Break func()
}

// SessionFactory returns a fresh SessionService configured with cfg.
type SessionFactory func(t *testing.T, cfg SessionConfig) SessionSetup

// idSource hands out fixed IDs when told to, and real ones otherwise.
type idSource struct {
	mu    sync.Mutex
	ids   []string
	calls int
	real  func() string
}

func (g *idSource) next() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.ids) == 0 {
		return g.real()
	}
	id := g.ids[min(g.calls, len(g.ids)-1)]
	g.calls++
	return id
}

// fixed makes the source hand out ids in turn, repeating the last, and
// resets the call count.
func (g *idSource) fixed(ids ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ids, g.calls = ids, 0
}

func (g *idSource) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls
}

// sessionEnv is one test's service, clock and ID source.
type sessionEnv struct {
	SessionSetup
	s   pentecost.SessionService
	ids *idSource
}

func newSessionEnv(t *testing.T, newService SessionFactory) *sessionEnv {
	t.Helper()
	ids := &idSource{real: sessionid.NewGenerator().New}
	setup := newService(t, SessionConfig{MaxIdle: SuiteMaxIdle, Retention: SuiteRetention, MaxIDAttempts: SuiteMaxIDAttempts, GenerateID: ids.next})
	return &sessionEnv{SessionSetup: setup, s: setup.Sessions, ids: ids}
}

func (e *sessionEnv) create(tb testing.TB, owner string) *pentecost.Session {
	tb.Helper()
	sess := &pentecost.Session{SourceLanguage: "en"}
	if err := e.s.CreateSession(as(owner), sess); err != nil {
		tb.Fatal(err)
	}
	return sess
}

func (e *sessionEnv) find(tb testing.TB, id string) *pentecost.Session {
	tb.Helper()
	return mustFind(tb, e.s, id)
}

func mustFind(tb testing.TB, s pentecost.SessionService, id string) *pentecost.Session {
	tb.Helper()
	sess, err := s.FindSessionByID(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return sess
}

func wantSession(tb testing.TB, got, want *pentecost.Session) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("session mismatch:\n got %+v\nwant %+v", got, want)
	}
}

// RunSessionServiceTests runs the SessionService suite against fresh
// services from newService.
func RunSessionServiceTests(t *testing.T, newService SessionFactory) {
	t.Run("CreateSession", func(t *testing.T) { testCreateSession(t, newService) })
	t.Run("FindSessionByID", func(t *testing.T) { testFindSessionByID(t, newService) })
	t.Run("FindSessions", func(t *testing.T) { testFindSessions(t, newService) })
	t.Run("FindSessionsLimit", func(t *testing.T) { testFindSessionsLimit(t, newService) })
	t.Run("UpdateSession", func(t *testing.T) { testUpdateSession(t, newService) })
	t.Run("EndSession", func(t *testing.T) { testEndSession(t, newService) })
	t.Run("TouchSession", func(t *testing.T) { testTouchSession(t, newService) })
	t.Run("SetListenerCount", func(t *testing.T) { testSetListenerCount(t, newService) })
	t.Run("ExpireSessions", func(t *testing.T) { testExpireSessions(t, newService) })
	t.Run("PurgeSessions", func(t *testing.T) { testPurgeSessions(t, newService) })
	t.Run("Reopen", func(t *testing.T) { testSessionReopen(t, newService) })
	t.Run("ErrUnavailable", func(t *testing.T) { testSessionUnavailable(t, newService) })
}

func testCreateSession(t *testing.T, newService SessionFactory) {
	t.Run("OK", func(t *testing.T) {
		e := newSessionEnv(t, newService)
		sess := &pentecost.Session{ID: "ignored-id-100", OwnerID: "mallory", SourceLanguage: " EN ", Status: pentecost.SessionEnded, ListenerCount: 9}
		if err := e.s.CreateSession(as("alice"), sess); err != nil {
			t.Fatal(err)
		}
		now := e.Clock.Millis()
		want := &pentecost.Session{
			ID:             sess.ID,
			OwnerID:        "alice",
			SourceLanguage: "en",
			QualityTier:    pentecost.QualityStandard,
			AudioFormat:    pentecost.AudioPCM16,
			Status:         pentecost.SessionActive,
			BroadcastState: pentecost.BroadcastState{Volume: 1.0, ChangedAt: now},
			CreatedAt:      now,
			LastActiveAt:   now,
			ExpiresAt:      now.Add(SuiteMaxIdle),
		}
		wantSession(t, sess, want)
		if !sessionid.Valid(sess.ID) || sess.ID == "ignored-id-100" {
			t.Fatalf("ID = %q, want a fresh valid ID", sess.ID)
		}
		wantSession(t, e.find(t, sess.ID), want)
	})

	t.Run("Premium", func(t *testing.T) {
		e := newSessionEnv(t, newService)
		sess := &pentecost.Session{SourceLanguage: "es", QualityTier: pentecost.QualityPremium, AudioFormat: pentecost.AudioPCM16}
		if err := e.s.CreateSession(as("alice"), sess); err != nil {
			t.Fatal(err)
		}
		if got := e.find(t, sess.ID); got.QualityTier != pentecost.QualityPremium || got.SourceLanguage != "es" {
			t.Fatalf("got %+v", got)
		}
	})

	t.Run("Err", func(t *testing.T) {
		e := newSessionEnv(t, newService)
		for _, tt := range []struct {
			name  string
			ctx   context.Context
			sess  pentecost.Session
			code  string
			field string
		}{
			{"ErrAuthRequired", context.Background(), pentecost.Session{SourceLanguage: "en"}, pentecost.EAUTHREQUIRED, ""},
			{"ErrAuthRequiredEmptyID", as(""), pentecost.Session{SourceLanguage: "en"}, pentecost.EAUTHREQUIRED, ""},
			{"ErrLanguageMissing", as("alice"), pentecost.Session{}, pentecost.EINVALIDLANGUAGE, ""},
			{"ErrLanguageInvalid", as("alice"), pentecost.Session{SourceLanguage: "english"}, pentecost.EINVALIDLANGUAGE, ""},
			{"ErrLanguageUnsupported", as("alice"), pentecost.Session{SourceLanguage: "xx"}, pentecost.EUNSUPPORTEDLANG, ""},
			{"ErrQualityTier", as("alice"), pentecost.Session{SourceLanguage: "en", QualityTier: "gold"}, pentecost.EVALIDATIONFIELD, "qualityTier"},
			{"ErrAudioFormat", as("alice"), pentecost.Session{SourceLanguage: "en", AudioFormat: "mp3"}, pentecost.EVALIDATIONFIELD, "audioFormat"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				err := e.s.CreateSession(tt.ctx, &tt.sess)
				wantCode(t, err, tt.code)
				if tt.field != "" && !reflect.DeepEqual(pentecost.ErrorDetails(err), map[string]string{"field": tt.field}) {
					t.Fatalf("details = %v, want field %q", pentecost.ErrorDetails(err), tt.field)
				}
			})
		}
		if _, n, err := e.s.FindSessions(context.Background(), pentecost.SessionFilter{}); err != nil || n != 0 {
			t.Fatalf("FindSessions = %d, %v; want no session stored", n, err)
		}
	})

	t.Run("CollisionRetried", func(t *testing.T) {
		e := newSessionEnv(t, newService)
		e.ids.fixed("golden-eagle-427")
		e.create(t, "alice")

		e.ids.fixed("golden-eagle-427", "Golden Eagle 427", "silver-lamb-100")
		if sess := e.create(t, "bob"); sess.ID != "silver-lamb-100" {
			t.Fatalf("ID = %q, want silver-lamb-100", sess.ID)
		}
		if n := e.ids.count(); n != 3 {
			t.Fatalf("GenerateID called %d times, want 3", n)
		}
	})

	t.Run("ErrSessionIDExhausted", func(t *testing.T) {
		e := newSessionEnv(t, newService)
		e.ids.fixed("golden-eagle-427")
		e.create(t, "alice")

		e.ids.fixed("golden-eagle-427")
		err := e.s.CreateSession(as("bob"), &pentecost.Session{SourceLanguage: "en"})
		wantCode(t, err, pentecost.ESESSIONIDEXHAUSTED)
		if n := e.ids.count(); n != SuiteMaxIDAttempts {
			t.Fatalf("GenerateID called %d times, want %d", n, SuiteMaxIDAttempts)
		}
		if got := e.find(t, "golden-eagle-427"); got.OwnerID != "alice" || got.Status != pentecost.SessionActive {
			t.Fatalf("live session disturbed: %+v", got)
		}
	})

	// An ID stays taken until its session is purged: whoever looks up an
	// ended or expired session within the retention period must find that
	// one, not a stranger's new session.
	for _, tt := range []struct {
		name string
		end  func(t *testing.T, e *sessionEnv, id string)
	}{
		{"ErrEndedIDNotReused", func(t *testing.T, e *sessionEnv, id string) {
			if _, err := e.s.EndSession(as("alice"), id); err != nil {
				t.Fatal(err)
			}
			e.Clock.Add(SuiteRetention - time.Millisecond)
		}},
		{"ErrExpiredIDNotReused", func(t *testing.T, e *sessionEnv, id string) {
			e.Clock.Add(SuiteMaxIdle) // expired, not yet swept by ExpireSessions
		}},
		{"ErrExpiredSweptIDNotReused", func(t *testing.T, e *sessionEnv, id string) {
			e.Clock.Add(SuiteMaxIdle)
			if _, err := e.s.ExpireSessions(context.Background()); err != nil {
				t.Fatal(err)
			}
			e.Clock.Add(SuiteRetention - time.Millisecond)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newSessionEnv(t, newService)
			e.ids.fixed("golden-eagle-427")
			old := e.create(t, "alice")
			tt.end(t, e, old.ID)

			err := e.s.CreateSession(as("bob"), &pentecost.Session{SourceLanguage: "fr"})
			wantCode(t, err, pentecost.ESESSIONIDEXHAUSTED)
			if got := e.find(t, old.ID); got.OwnerID != "alice" || got.Status != pentecost.SessionEnded {
				t.Fatalf("ended session replaced: %+v", got)
			}

			e.ids.fixed(old.ID, "silver-lamb-100")
			if sess := e.create(t, "bob"); sess.ID != "silver-lamb-100" {
				t.Fatalf("ID = %q, want silver-lamb-100", sess.ID)
			}
		})
	}

	t.Run("ReusePurgedID", func(t *testing.T) {
		e := newSessionEnv(t, newService)
		e.ids.fixed("golden-eagle-427")
		old := e.create(t, "alice")
		if _, err := e.s.EndSession(as("alice"), old.ID); err != nil {
			t.Fatal(err)
		}
		e.Clock.Add(SuiteRetention)
		if n, err := e.s.PurgeSessions(context.Background()); err != nil || n != 1 {
			t.Fatalf("PurgeSessions = %d, %v; want 1", n, err)
		}
		sess := &pentecost.Session{SourceLanguage: "fr"}
		if err := e.s.CreateSession(as("bob"), sess); err != nil {
			t.Fatal(err)
		}
		if sess.ID != old.ID || sess.OwnerID != "bob" {
			t.Fatalf("session = %+v, want %s of bob", sess, old.ID)
		}
		wantSession(t, e.find(t, old.ID), sess)
		// The purged session left no trace in alice's list.
		if _, n, err := e.s.FindSessions(context.Background(), pentecost.SessionFilter{OwnerID: ptr("alice")}); err != nil || n != 0 {
			t.Fatalf("alice's sessions = %d, %v; want 0", n, err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		e := newSessionEnv(t, newService)
		const n = 50
		ids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				sess := &pentecost.Session{SourceLanguage: "en"}
				errs[i] = e.s.CreateSession(as(fmt.Sprintf("speaker%d", i)), sess)
				ids[i] = sess.ID
			})
		}
		wg.Wait()
		seen := map[string]bool{}
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("create %d: %v", i, errs[i])
			}
			if seen[ids[i]] {
				t.Fatalf("ID %q handed out twice", ids[i])
			}
			seen[ids[i]] = true
		}
		if _, total, err := e.s.FindSessions(context.Background(), pentecost.SessionFilter{}); err != nil || total != n {
			t.Fatalf("FindSessions total = %d, %v; want %d", total, err, n)
		}
	})

	t.Run("ConcurrentSameID", func(t *testing.T) {
		// Two nodes drawing the same candidate: exactly one gets it.
		e := newSessionEnv(t, newService)
		e.ids.fixed("golden-eagle-427")
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs[i] = e.s.CreateSession(as(fmt.Sprintf("speaker%d", i)), &pentecost.Session{SourceLanguage: "en"})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch pentecost.ErrorCode(err) {
			case "":
				ok++
			case pentecost.ESESSIONIDEXHAUSTED:
			default:
				t.Fatalf("err = %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d creations succeeded with one ID, want 1", ok)
		}
	})
}

func testFindSessionByID(t *testing.T, newService SessionFactory) {
	e := newSessionEnv(t, newService)
	e.ids.fixed("golden-eagle-427")
	want := e.create(t, "alice")

	t.Run("OK", func(t *testing.T) {
		for _, id := range []string{"golden-eagle-427", "Golden-Eagle-427", " golden eagle 427 ", "GOLDEN_EAGLE_427"} {
			wantSession(t, e.find(t, id), want)
		}
	})

	t.Run("ErrInvalidSessionID", func(t *testing.T) {
		for _, id := range []string{"", "golden-eagle", "golden-eagle-42", "drop table sessions", "{golden}-eagle-427"} {
			_, err := e.s.FindSessionByID(context.Background(), id)
			wantCode(t, err, pentecost.EINVALIDSESSIONID)
		}
	})

	t.Run("ErrSessionNotFound", func(t *testing.T) {
		_, err := e.s.FindSessionByID(context.Background(), "silver-lamb-999")
		wantCode(t, err, pentecost.ESESSIONNOTFOUND)
	})

	t.Run("Ended", func(t *testing.T) {
		ended, err := e.s.EndSession(as("alice"), want.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantSession(t, e.find(t, want.ID), ended)
	})
}

func testFindSessions(t *testing.T, newService SessionFactory) {
	e := newSessionEnv(t, newService)
	var created []*pentecost.Session // oldest first
	for _, owner := range []string{"alice", "bob", "alice", "bob", "alice"} {
		created = append(created, e.create(t, owner))
		e.Clock.Add(time.Second)
	}
	ended, err := e.s.EndSession(as("bob"), created[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	created[1] = ended
	paused, err := e.s.UpdateSession(as("alice"), created[2].ID, pentecost.SessionUpdate{Status: ptr(pentecost.SessionPaused)})
	if err != nil {
		t.Fatal(err)
	}
	created[2] = paused
	pick := func(idx ...int) []*pentecost.Session {
		var out []*pentecost.Session
		for _, i := range idx {
			out = append(out, created[i])
		}
		return out
	}

	for _, tt := range []struct {
		name   string
		filter pentecost.SessionFilter
		want   []*pentecost.Session
		total  int
	}{
		{"All", pentecost.SessionFilter{}, pick(4, 3, 2, 1, 0), 5},
		{"Owner", pentecost.SessionFilter{OwnerID: ptr("alice")}, pick(4, 2, 0), 3},
		{"Active", pentecost.SessionFilter{Status: ptr(pentecost.SessionActive)}, pick(4, 3, 0), 3},
		{"Paused", pentecost.SessionFilter{Status: ptr(pentecost.SessionPaused)}, pick(2), 1},
		{"Ended", pentecost.SessionFilter{Status: ptr(pentecost.SessionEnded)}, pick(1), 1},
		{"OwnerAndStatus", pentecost.SessionFilter{OwnerID: ptr("bob"), Status: ptr(pentecost.SessionActive)}, pick(3), 1},
		{"Page", pentecost.SessionFilter{Offset: 1, Limit: 2}, pick(3, 2), 5},
		{"PageWithStatus", pentecost.SessionFilter{Status: ptr(pentecost.SessionActive), Offset: 1, Limit: 1}, pick(3), 3},
		{"PagePastEnd", pentecost.SessionFilter{Offset: 10}, nil, 5},
		{"NegativeOffset", pentecost.SessionFilter{Offset: -3, Limit: 1}, pick(4), 5},
		{"UnknownStatus", pentecost.SessionFilter{Status: ptr(pentecost.SessionStatus("bogus"))}, nil, 0},
		{"NoOwner", pentecost.SessionFilter{OwnerID: ptr("carol")}, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, total, err := e.s.FindSessions(context.Background(), tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if total != tt.total {
				t.Fatalf("total = %d, want %d", total, tt.total)
			}
			if got == nil {
				t.Fatal("nil slice, want empty")
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d sessions, want %d", len(got), len(tt.want))
			}
			for i := range got {
				wantSession(t, got[i], tt.want[i])
			}
		})
	}

	t.Run("ExpiredCountsAsEnded", func(t *testing.T) {
		e.Clock.Add(SuiteMaxIdle)
		got, total, err := e.s.FindSessions(context.Background(), pentecost.SessionFilter{Status: ptr(pentecost.SessionEnded)})
		if err != nil || total != 5 || len(got) != 5 {
			t.Fatalf("got %d of %d, %v; want all 5 ended", len(got), total, err)
		}
		for _, sess := range got {
			if sess.Status != pentecost.SessionEnded {
				t.Fatalf("status %q, want ended", sess.Status)
			}
		}
		if _, total, err := e.s.FindSessions(context.Background(), pentecost.SessionFilter{Status: ptr(pentecost.SessionActive)}); err != nil || total != 0 {
			t.Fatalf("active total = %d, %v; want 0", total, err)
		}
	})
}

// suiteSessionLimit and suiteMaxSessionLimit are the page sizes both stores use.
const (
	suiteSessionLimit    = 100
	suiteMaxSessionLimit = 1000
)

func testFindSessionsLimit(t *testing.T, newService SessionFactory) {
	e := newSessionEnv(t, newService)
	for range suiteSessionLimit + 1 {
		e.create(t, "alice")
	}
	for _, tt := range []struct{ limit, want int }{{0, suiteSessionLimit}, {-5, suiteSessionLimit}, {suiteMaxSessionLimit + 1, suiteSessionLimit + 1}, {7, 7}} {
		got, total, err := e.s.FindSessions(context.Background(), pentecost.SessionFilter{Limit: tt.limit})
		if err != nil || len(got) != tt.want || total != suiteSessionLimit+1 {
			t.Fatalf("Limit %d: got %d of %d, %v; want %d", tt.limit, len(got), total, err, tt.want)
		}
	}
}

func testUpdateSession(t *testing.T, newService SessionFactory) {
	// setup returns an env and a session alice owns, created a minute
	// before the clock's time.
	setup := func(t *testing.T) (*sessionEnv, *pentecost.Session) {
		e := newSessionEnv(t, newService)
		sess := e.create(t, "alice")
		e.Clock.Add(time.Minute)
		return e, sess
	}

	for _, tt := range []struct {
		name string
		upd  pentecost.SessionUpdate
		edit func(s *pentecost.Session, now time.Time) // turns the old session into the expected one
	}{
		{"PauseByStatus", pentecost.SessionUpdate{Status: ptr(pentecost.SessionPaused)}, func(s *pentecost.Session, now time.Time) {
			s.Status, s.BroadcastState.Paused, s.BroadcastState.ChangedAt = pentecost.SessionPaused, true, now
		}},
		{"PauseByState", pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{Paused: ptr(true)}}, func(s *pentecost.Session, now time.Time) {
			s.Status, s.BroadcastState.Paused, s.BroadcastState.ChangedAt = pentecost.SessionPaused, true, now
		}},
		{"PauseByBoth", pentecost.SessionUpdate{Status: ptr(pentecost.SessionPaused), BroadcastState: &pentecost.BroadcastStateUpdate{Paused: ptr(true)}}, func(s *pentecost.Session, now time.Time) {
			s.Status, s.BroadcastState.Paused, s.BroadcastState.ChangedAt = pentecost.SessionPaused, true, now
		}},
		{"Controls", pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{Muted: ptr(true), Volume: ptr(0.25), SpeakerState: ptr("speaking")}}, func(s *pentecost.Session, now time.Time) {
			s.BroadcastState = pentecost.BroadcastState{Muted: true, Volume: 0.25, SpeakerState: "speaking", ChangedAt: now}
		}},
		{"VolumeBounds", pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{Volume: ptr(0.0)}}, func(s *pentecost.Session, now time.Time) {
			s.BroadcastState.Volume, s.BroadcastState.ChangedAt = 0, now
		}},
		{"LanguageAndTier", pentecost.SessionUpdate{SourceLanguage: ptr("DE"), QualityTier: ptr(pentecost.QualityPremium)}, func(s *pentecost.Session, now time.Time) {
			s.SourceLanguage, s.QualityTier = "de", pentecost.QualityPremium
		}},
		{"NoStateChange", pentecost.SessionUpdate{Status: ptr(pentecost.SessionActive), BroadcastState: &pentecost.BroadcastStateUpdate{Volume: ptr(1.0)}}, func(s *pentecost.Session, now time.Time) {}},
		{"Empty", pentecost.SessionUpdate{}, func(s *pentecost.Session, now time.Time) {}},
		{"End", pentecost.SessionUpdate{Status: ptr(pentecost.SessionEnded)}, func(s *pentecost.Session, now time.Time) {
			s.Status, s.EndedAt = pentecost.SessionEnded, now
		}},
	} {
		t.Run("OK"+tt.name, func(t *testing.T) {
			e, sess := setup(t)
			got, err := e.s.UpdateSession(as("alice"), strings.ToUpper(sess.ID), tt.upd)
			if err != nil {
				t.Fatal(err)
			}
			now := e.Clock.Millis()
			want := *sess
			want.LastActiveAt, want.ExpiresAt = now, now.Add(SuiteMaxIdle) // an owner's update counts as use
			tt.edit(&want, now)
			wantSession(t, got, &want)
			wantSession(t, e.find(t, sess.ID), &want)
		})
	}

	t.Run("OKResume", func(t *testing.T) {
		e, sess := setup(t)
		if _, err := e.s.UpdateSession(as("alice"), sess.ID, pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{Paused: ptr(true)}}); err != nil {
			t.Fatal(err)
		}
		e.Clock.Add(time.Second)
		got, err := e.s.UpdateSession(as("alice"), sess.ID, pentecost.SessionUpdate{Status: ptr(pentecost.SessionActive)})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != pentecost.SessionActive || got.BroadcastState.Paused || !got.BroadcastState.ChangedAt.Equal(e.Clock.Millis()) {
			t.Fatalf("got %+v", got)
		}
	})

	for _, tt := range []struct {
		name string
		ctx  context.Context
		id   string // "" means the session's own
		upd  pentecost.SessionUpdate
		code string
	}{
		{"ErrAuthRequired", context.Background(), "", pentecost.SessionUpdate{}, pentecost.EAUTHREQUIRED},
		{"ErrForbidden", as("bob"), "", pentecost.SessionUpdate{Status: ptr(pentecost.SessionPaused)}, pentecost.EFORBIDDEN},
		{"ErrInvalidSessionID", as("alice"), "nope", pentecost.SessionUpdate{}, pentecost.EINVALIDSESSIONID},
		{"ErrSessionNotFound", as("alice"), "silver-lamb-999", pentecost.SessionUpdate{}, pentecost.ESESSIONNOTFOUND},
		{"ErrStatus", as("alice"), "", pentecost.SessionUpdate{Status: ptr(pentecost.SessionStatus("sleeping"))}, pentecost.EVALIDATIONFIELD},
		{"ErrStatusDisagrees", as("alice"), "", pentecost.SessionUpdate{Status: ptr(pentecost.SessionActive), BroadcastState: &pentecost.BroadcastStateUpdate{Paused: ptr(true)}}, pentecost.EVALIDATIONFIELD},
		{"ErrVolumeHigh", as("alice"), "", pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{Volume: ptr(1.01)}}, pentecost.EVALIDATIONFIELD},
		{"ErrVolumeNegative", as("alice"), "", pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{Volume: ptr(-0.1)}}, pentecost.EVALIDATIONFIELD},
		{"ErrVolumeNaN", as("alice"), "", pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{Volume: ptr(math.NaN())}}, pentecost.EVALIDATIONFIELD},
		{"ErrSpeakerState", as("alice"), "", pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{SpeakerState: ptr(strings.Repeat("x", MaxSpeakerStateLen+1))}}, pentecost.EVALIDATIONFIELD},
		{"ErrSpeakerStateNotUTF8", as("alice"), "", pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{SpeakerState: ptr("\xff")}}, pentecost.EVALIDATIONFIELD},
		{"ErrLanguage", as("alice"), "", pentecost.SessionUpdate{SourceLanguage: ptr("klingon")}, pentecost.EINVALIDLANGUAGE},
		{"ErrLanguageUnsupported", as("alice"), "", pentecost.SessionUpdate{SourceLanguage: ptr("xx")}, pentecost.EUNSUPPORTEDLANG},
		{"ErrQualityTier", as("alice"), "", pentecost.SessionUpdate{QualityTier: ptr(pentecost.QualityTier("gold"))}, pentecost.EVALIDATIONFIELD},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, sess := setup(t)
			id := tt.id
			if id == "" {
				id = sess.ID
			}
			_, err := e.s.UpdateSession(tt.ctx, id, tt.upd)
			wantCode(t, err, tt.code)
			wantSession(t, e.find(t, sess.ID), sess) // nothing changed
		})
	}

	t.Run("ErrSessionEnded", func(t *testing.T) {
		e, sess := setup(t)
		if _, err := e.s.EndSession(as("alice"), sess.ID); err != nil {
			t.Fatal(err)
		}
		_, err := e.s.UpdateSession(as("alice"), sess.ID, pentecost.SessionUpdate{Status: ptr(pentecost.SessionActive)})
		wantCode(t, err, pentecost.ESESSIONENDED)
	})

	t.Run("ErrSessionExpired", func(t *testing.T) {
		e, sess := setup(t)
		e.Clock.Add(SuiteMaxIdle)
		_, err := e.s.UpdateSession(as("alice"), sess.ID, pentecost.SessionUpdate{})
		wantCode(t, err, pentecost.ESESSIONENDED)
	})

	t.Run("ConcurrentUpdatesAllApply", func(t *testing.T) {
		// Updates of different fields from many callers (nodes) lose none.
		e, sess := setup(t)
		var wg sync.WaitGroup
		errs := make([]error, 3)
		wg.Go(func() {
			_, errs[0] = e.s.UpdateSession(as("alice"), sess.ID, pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{Muted: ptr(true)}})
		})
		wg.Go(func() {
			_, errs[1] = e.s.UpdateSession(as("alice"), sess.ID, pentecost.SessionUpdate{QualityTier: ptr(pentecost.QualityPremium)})
		})
		wg.Go(func() { errs[2] = e.s.SetListenerCount(context.Background(), sess.ID, 7) })
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got := e.find(t, sess.ID)
		if !got.BroadcastState.Muted || got.QualityTier != pentecost.QualityPremium || got.ListenerCount != 7 {
			t.Fatalf("got %+v, want every update applied", got)
		}
	})
}

func testEndSession(t *testing.T, newService SessionFactory) {
	setup := func(t *testing.T) (*sessionEnv, *pentecost.Session) {
		e := newSessionEnv(t, newService)
		sess := e.create(t, "alice")
		if err := e.s.SetListenerCount(context.Background(), sess.ID, 12); err != nil {
			t.Fatal(err)
		}
		sess.ListenerCount = 12
		e.Clock.Add(time.Minute)
		return e, sess
	}

	t.Run("OK", func(t *testing.T) {
		e, sess := setup(t)
		got, err := e.s.EndSession(as("alice"), " "+sess.ID+" ")
		if err != nil {
			t.Fatal(err)
		}
		want := *sess
		want.Status, want.EndedAt, want.ListenerCount = pentecost.SessionEnded, e.Clock.Millis(), 0
		wantSession(t, got, &want)
		wantSession(t, e.find(t, sess.ID), &want)
	})

	for _, tt := range []struct {
		name string
		ctx  context.Context
		id   string
		code string
	}{
		{"ErrAuthRequired", context.Background(), "", pentecost.EAUTHREQUIRED},
		{"ErrForbidden", as("bob"), "", pentecost.EFORBIDDEN},
		{"ErrInvalidSessionID", as("alice"), "golden", pentecost.EINVALIDSESSIONID},
		{"ErrSessionNotFound", as("alice"), "silver-lamb-999", pentecost.ESESSIONNOTFOUND},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, sess := setup(t)
			id := tt.id
			if id == "" {
				id = sess.ID
			}
			_, err := e.s.EndSession(tt.ctx, id)
			wantCode(t, err, tt.code)
			wantSession(t, e.find(t, sess.ID), sess)
		})
	}

	t.Run("ErrSessionEnded", func(t *testing.T) {
		e, sess := setup(t)
		if _, err := e.s.EndSession(as("alice"), sess.ID); err != nil {
			t.Fatal(err)
		}
		_, err := e.s.EndSession(as("alice"), sess.ID)
		wantCode(t, err, pentecost.ESESSIONENDED)
	})
}

func testTouchSession(t *testing.T, newService SessionFactory) {
	t.Run("OK", func(t *testing.T) {
		e := newSessionEnv(t, newService)
		sess := e.create(t, "alice")
		e.Clock.Add(time.Hour)
		if err := e.s.TouchSession(context.Background(), sess.ID); err != nil {
			t.Fatal(err)
		}
		want := *sess
		want.LastActiveAt, want.ExpiresAt = e.Clock.Millis(), e.Clock.Millis().Add(SuiteMaxIdle)
		wantSession(t, e.find(t, sess.ID), &want)
	})

	t.Run("ErrSessionNotFound", func(t *testing.T) {
		e := newSessionEnv(t, newService)
		for _, id := range []string{"silver-lamb-999", "not an id"} {
			wantCode(t, e.s.TouchSession(context.Background(), id), pentecost.ESESSIONNOTFOUND)
		}
	})

	t.Run("ErrSessionEnded", func(t *testing.T) {
		e := newSessionEnv(t, newService)
		sess := e.create(t, "alice")
		ended, err := e.s.EndSession(as("alice"), sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.s.TouchSession(context.Background(), sess.ID), pentecost.ESESSIONENDED)
		wantSession(t, e.find(t, sess.ID), ended)
	})

	t.Run("ErrSessionExpired", func(t *testing.T) {
		e := newSessionEnv(t, newService)
		sess := e.create(t, "alice")
		e.Clock.Add(SuiteMaxIdle)
		wantCode(t, e.s.TouchSession(context.Background(), sess.ID), pentecost.ESESSIONENDED)
	})
}

func testSetListenerCount(t *testing.T, newService SessionFactory) {
	e := newSessionEnv(t, newService)
	sess := e.create(t, "alice")

	t.Run("OK", func(t *testing.T) {
		for _, n := range []int{3, 0, 250} {
			if err := e.s.SetListenerCount(context.Background(), sess.ID, n); err != nil {
				t.Fatal(err)
			}
			if got := e.find(t, sess.ID); got.ListenerCount != n || !got.LastActiveAt.Equal(sess.LastActiveAt) {
				t.Fatalf("got count %d, last active %v; want %d, unchanged", got.ListenerCount, got.LastActiveAt, n)
			}
		}
	})

	t.Run("ErrNegative", func(t *testing.T) {
		wantCode(t, e.s.SetListenerCount(context.Background(), sess.ID, -1), pentecost.EVALIDATIONFIELD)
	})

	t.Run("ErrSessionNotFound", func(t *testing.T) {
		wantCode(t, e.s.SetListenerCount(context.Background(), "silver-lamb-999", 1), pentecost.ESESSIONNOTFOUND)
		wantCode(t, e.s.SetListenerCount(context.Background(), "??", 1), pentecost.ESESSIONNOTFOUND)
	})

	t.Run("EndedStaysZero", func(t *testing.T) {
		if _, err := e.s.EndSession(as("alice"), sess.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.s.SetListenerCount(context.Background(), sess.ID, 4); err != nil {
			t.Fatal(err)
		}
		if got := e.find(t, sess.ID); got.ListenerCount != 0 {
			t.Fatalf("count = %d, want 0", got.ListenerCount)
		}
	})
}

func testExpireSessions(t *testing.T, newService SessionFactory) {
	e := newSessionEnv(t, newService)
	idle := e.create(t, "alice")
	busy := e.create(t, "bob")
	if err := e.s.SetListenerCount(context.Background(), idle.ID, 5); err != nil {
		t.Fatal(err)
	}
	idle.ListenerCount = 5

	// Just before the idle expiry both live; a touch postpones bob's.
	e.Clock.Add(SuiteMaxIdle - time.Millisecond)
	if err := e.s.TouchSession(context.Background(), busy.ID); err != nil {
		t.Fatal(err)
	}
	if expired, err := e.s.ExpireSessions(context.Background()); err != nil || len(expired) != 0 {
		t.Fatalf("ExpireSessions = %v, %v; want none yet", expired, err)
	}
	if got := e.find(t, idle.ID); got.Status != pentecost.SessionActive {
		t.Fatalf("status %q before expiry, want active", got.Status)
	}

	// At ExpiresAt alice's session is reported ended before any sweep.
	e.Clock.Add(time.Millisecond)
	want := *idle
	want.Status, want.EndedAt, want.ListenerCount = pentecost.SessionEnded, idle.ExpiresAt, 0
	wantSession(t, e.find(t, idle.ID), &want)

	// The sweep ends it for good, with the same figures, exactly once.
	expired, err := e.s.ExpireSessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(expired) != 1 {
		t.Fatalf("expired %d sessions, want 1", len(expired))
	}
	wantSession(t, expired[0], &want)
	wantSession(t, e.find(t, idle.ID), &want)
	if again, err := e.s.ExpireSessions(context.Background()); err != nil || len(again) != 0 {
		t.Fatalf("second sweep = %v, %v; want none", again, err)
	}
	if got := e.find(t, busy.ID); got.Status != pentecost.SessionActive {
		t.Fatalf("touched session status %q, want active", got.Status)
	}

	// Bob's session runs out MaxIdle after its touch.
	e.Clock.Add(SuiteMaxIdle - time.Millisecond)
	if expired, err := e.s.ExpireSessions(context.Background()); err != nil || len(expired) != 1 || expired[0].ID != busy.ID {
		t.Fatalf("ExpireSessions = %v, %v; want bob's session", expired, err)
	}
}

func testPurgeSessions(t *testing.T, newService SessionFactory) {
	e := newSessionEnv(t, newService)
	ended := e.create(t, "alice")
	live := e.create(t, "bob")
	if _, err := e.s.EndSession(as("alice"), ended.ID); err != nil {
		t.Fatal(err)
	}

	purge := func(want int) {
		t.Helper()
		if n, err := e.s.PurgeSessions(context.Background()); err != nil || n != want {
			t.Fatalf("PurgeSessions = %d, %v; want %d", n, err, want)
		}
	}

	// Touches every few hours keep bob's session live throughout.
	for elapsed := time.Duration(0); elapsed < SuiteRetention-time.Millisecond; {
		step := min(SuiteMaxIdle/2, SuiteRetention-time.Millisecond-elapsed)
		e.Clock.Add(step)
		elapsed += step
		if err := e.s.TouchSession(context.Background(), live.ID); err != nil {
			t.Fatal(err)
		}
	}
	purge(0)
	e.find(t, ended.ID)

	e.Clock.Add(time.Millisecond)
	purge(1)
	_, err := e.s.FindSessionByID(context.Background(), ended.ID)
	wantCode(t, err, pentecost.ESESSIONNOTFOUND)
	if got := e.find(t, live.ID); got.Status != pentecost.SessionActive {
		t.Fatalf("live session status %q, want active", got.Status)
	}

	// A session that expired is purged Retention after its ExpiresAt, swept or not.
	expiresAt := e.find(t, live.ID).ExpiresAt
	e.Clock.Add(expiresAt.Sub(e.Clock.Millis()) + SuiteRetention - time.Millisecond)
	purge(0)
	e.Clock.Add(time.Millisecond)
	purge(1)
	_, err = e.s.FindSessionByID(context.Background(), live.ID)
	wantCode(t, err, pentecost.ESESSIONNOTFOUND)
	if _, n, err := e.s.FindSessions(context.Background(), pentecost.SessionFilter{}); err != nil || n != 0 {
		t.Fatalf("FindSessions total = %d, %v; want 0 after purging everything", n, err)
	}
}

func testSessionReopen(t *testing.T, newService SessionFactory) {
	e := newSessionEnv(t, newService)
	if e.Reopen == nil {
		t.Fatal("the factory must set SessionSetup.Reopen")
	}
	live := e.create(t, "alice")
	e.Clock.Add(time.Minute)
	live, err := e.s.UpdateSession(as("alice"), live.ID, pentecost.SessionUpdate{
		QualityTier:    ptr(pentecost.QualityPremium),
		BroadcastState: &pentecost.BroadcastStateUpdate{Paused: ptr(true), Muted: ptr(true), Volume: ptr(0.3), SpeakerState: ptr("praying")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.SetListenerCount(context.Background(), live.ID, 42); err != nil {
		t.Fatal(err)
	}
	live.ListenerCount = 42
	ended, err := e.s.EndSession(as("bob"), e.create(t, "bob").ID)
	if err != nil {
		t.Fatal(err)
	}

	other := e.Reopen()
	wantSession(t, mustFind(t, other, live.ID), live)
	wantSession(t, mustFind(t, other, ended.ID), ended)
}

func testSessionUnavailable(t *testing.T, newService SessionFactory) {
	e := newSessionEnv(t, newService)
	if e.Break == nil {
		t.Fatal("the factory must set SessionSetup.Break")
	}
	sess := e.create(t, "alice")
	e.Break()

	ctx := as("alice")
	for _, tt := range []struct {
		name string
		call func() error
	}{
		{"CreateSession", func() error { return e.s.CreateSession(ctx, &pentecost.Session{SourceLanguage: "en"}) }},
		{"FindSessionByID", func() error { _, err := e.s.FindSessionByID(ctx, sess.ID); return err }},
		{"FindSessions", func() error { _, _, err := e.s.FindSessions(ctx, pentecost.SessionFilter{}); return err }},
		{"UpdateSession", func() error { _, err := e.s.UpdateSession(ctx, sess.ID, pentecost.SessionUpdate{}); return err }},
		{"EndSession", func() error { _, err := e.s.EndSession(ctx, sess.ID); return err }},
		{"TouchSession", func() error { return e.s.TouchSession(ctx, sess.ID) }},
		{"SetListenerCount", func() error { return e.s.SetListenerCount(ctx, sess.ID, 1) }},
		{"ExpireSessions", func() error { _, err := e.s.ExpireSessions(ctx); return err }},
		{"PurgeSessions", func() error { _, err := e.s.PurgeSessions(ctx); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), pentecost.EUNAVAILABLE) })
	}
}
