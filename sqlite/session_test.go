package sqlite_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sessionid"
	"github.com/pentecost/pentecost/sqlite"
)

// as returns a context carrying the speaker with the given ID.
func as(id string) context.Context {
	return pentecost.NewContextWithUser(context.Background(), &pentecost.User{ID: id, Name: id, Issuer: pentecost.EmbeddedIssuer})
}

// MustCreateSession creates an English session owned by owner.
func MustCreateSession(tb testing.TB, s *sqlite.SessionService, owner string) *pentecost.Session {
	tb.Helper()
	sess := &pentecost.Session{SourceLanguage: "en"}
	if err := s.CreateSession(as(owner), sess); err != nil {
		tb.Fatal(err)
	}
	return sess
}

// MustFindSession finds a session by ID or fails the test.
func MustFindSession(tb testing.TB, s *sqlite.SessionService, id string) *pentecost.Session {
	tb.Helper()
	sess, err := s.FindSessionByID(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return sess
}

// wantEqual fails unless got and want are deeply equal.
func wantEqual(tb testing.TB, got, want *pentecost.Session) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("session mismatch:\n got %+v\nwant %+v", got, want)
	}
}

// fixedIDs returns a GenerateID handing out ids in turn and a counter of calls.
func fixedIDs(ids ...string) (gen func() string, calls *int) {
	calls = new(int)
	return func() string {
		id := ids[min(*calls, len(ids)-1)]
		*calls++
		return id
	}, calls
}

func ptr[T any](v T) *T { return &v }

func TestSessionService_CreateSession(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		db, clock := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
		sess := &pentecost.Session{ID: "ignored-id-100", OwnerID: "mallory", SourceLanguage: " EN ", Status: pentecost.SessionEnded, ListenerCount: 9}
		if err := s.CreateSession(as("alice"), sess); err != nil {
			t.Fatal(err)
		}
		now := clock.Millis()
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
			ExpiresAt:      now.Add(sqlite.DefaultMaxIdle),
		}
		wantEqual(t, sess, want)
		if !sessionid.Valid(sess.ID) || sess.ID == "ignored-id-100" {
			t.Fatalf("ID = %q, want a fresh valid ID", sess.ID)
		}
		wantEqual(t, MustFindSession(t, s, sess.ID), want)
	})

	t.Run("Premium", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
		sess := &pentecost.Session{SourceLanguage: "es", QualityTier: pentecost.QualityPremium, AudioFormat: pentecost.AudioPCM16}
		if err := s.CreateSession(as("alice"), sess); err != nil {
			t.Fatal(err)
		}
		if got := MustFindSession(t, s, sess.ID); got.QualityTier != pentecost.QualityPremium || got.SourceLanguage != "es" {
			t.Fatalf("got %+v", got)
		}
	})

	t.Run("Err", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
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
				err := s.CreateSession(tt.ctx, &tt.sess)
				wantCode(t, err, tt.code)
				if tt.field != "" && !reflect.DeepEqual(pentecost.ErrorDetails(err), map[string]string{"field": tt.field}) {
					t.Fatalf("details = %v, want field %q", pentecost.ErrorDetails(err), tt.field)
				}
			})
		}
		if _, n, err := s.FindSessions(context.Background(), pentecost.SessionFilter{}); err != nil || n != 0 {
			t.Fatalf("FindSessions = %d, %v; want no session stored", n, err)
		}
	})

	t.Run("CollisionRetried", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
		s.GenerateID, _ = fixedIDs("golden-eagle-427")
		MustCreateSession(t, s, "alice")

		var calls *int
		s.GenerateID, calls = fixedIDs("golden-eagle-427", "Golden Eagle 427", "silver-lamb-100")
		if sess := MustCreateSession(t, s, "bob"); sess.ID != "silver-lamb-100" {
			t.Fatalf("ID = %q, want silver-lamb-100", sess.ID)
		}
		if *calls != 3 {
			t.Fatalf("GenerateID called %d times, want 3", *calls)
		}
	})

	t.Run("ErrSessionIDExhausted", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
		s.GenerateID, _ = fixedIDs("golden-eagle-427")
		MustCreateSession(t, s, "alice")

		var calls *int
		s.GenerateID, calls = fixedIDs("golden-eagle-427")
		err := s.CreateSession(as("bob"), &pentecost.Session{SourceLanguage: "en"})
		wantCode(t, err, pentecost.ESESSIONIDEXHAUSTED)
		if *calls != sqlite.DefaultMaxIDAttempts || s.MaxIDAttempts != sqlite.DefaultMaxIDAttempts {
			t.Fatalf("GenerateID called %d times, want %d", *calls, sqlite.DefaultMaxIDAttempts)
		}
		if got := MustFindSession(t, s, "golden-eagle-427"); got.OwnerID != "alice" || got.Status != pentecost.SessionActive {
			t.Fatalf("live session disturbed: %+v", got)
		}
	})

	// An ID stays taken until its row is purged: whoever looks up an ended
	// or expired session within the retention period must find that one,
	// not a stranger's new session.
	for _, tt := range []struct {
		name string
		end  func(t *testing.T, s *sqlite.SessionService, clock *Clock, id string)
	}{
		{"ErrEndedIDNotReused", func(t *testing.T, s *sqlite.SessionService, clock *Clock, id string) {
			if _, err := s.EndSession(as("alice"), id); err != nil {
				t.Fatal(err)
			}
			clock.Add(s.Retention - time.Millisecond)
		}},
		{"ErrExpiredIDNotReused", func(t *testing.T, s *sqlite.SessionService, clock *Clock, id string) {
			clock.Add(s.MaxIdle) // expired, not yet swept by ExpireSessions
		}},
		{"ErrExpiredSweptIDNotReused", func(t *testing.T, s *sqlite.SessionService, clock *Clock, id string) {
			clock.Add(s.MaxIdle)
			if _, err := s.ExpireSessions(context.Background()); err != nil {
				t.Fatal(err)
			}
			clock.Add(s.Retention - time.Millisecond)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db, clock := MustOpenDB(t)
			s := sqlite.NewSessionService(db)
			s.GenerateID, _ = fixedIDs("golden-eagle-427")
			old := MustCreateSession(t, s, "alice")
			tt.end(t, s, clock, old.ID)

			err := s.CreateSession(as("bob"), &pentecost.Session{SourceLanguage: "fr"})
			wantCode(t, err, pentecost.ESESSIONIDEXHAUSTED)
			if got := MustFindSession(t, s, old.ID); got.OwnerID != "alice" || got.Status != pentecost.SessionEnded {
				t.Fatalf("ended session replaced: %+v", got)
			}

			// Another candidate is taken instead.
			s.GenerateID, _ = fixedIDs(old.ID, "silver-lamb-100")
			if sess := MustCreateSession(t, s, "bob"); sess.ID != "silver-lamb-100" {
				t.Fatalf("ID = %q, want silver-lamb-100", sess.ID)
			}
		})
	}

	t.Run("ReusePurgedID", func(t *testing.T) {
		db, clock := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
		s.GenerateID, _ = fixedIDs("golden-eagle-427")
		old := MustCreateSession(t, s, "alice")
		if _, err := s.EndSession(as("alice"), old.ID); err != nil {
			t.Fatal(err)
		}
		clock.Add(s.Retention)
		if n, err := s.PurgeSessions(context.Background()); err != nil || n != 1 {
			t.Fatalf("PurgeSessions = %d, %v; want 1", n, err)
		}
		sess := &pentecost.Session{SourceLanguage: "fr"}
		if err := s.CreateSession(as("bob"), sess); err != nil {
			t.Fatal(err)
		}
		if sess.ID != old.ID || sess.OwnerID != "bob" {
			t.Fatalf("session = %+v, want %s of bob", sess, old.ID)
		}
		wantEqual(t, MustFindSession(t, s, old.ID), sess)
	})

	t.Run("Concurrent", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
		const n = 50
		ids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				sess := &pentecost.Session{SourceLanguage: "en"}
				errs[i] = s.CreateSession(as(fmt.Sprintf("speaker%d", i)), sess)
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
		if _, total, err := s.FindSessions(context.Background(), pentecost.SessionFilter{}); err != nil || total != n {
			t.Fatalf("FindSessions total = %d, %v; want %d", total, err, n)
		}
	})
}

func TestSessionService_FindSessionByID(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := sqlite.NewSessionService(db)
	s.GenerateID, _ = fixedIDs("golden-eagle-427")
	want := MustCreateSession(t, s, "alice")

	t.Run("OK", func(t *testing.T) {
		for _, id := range []string{"golden-eagle-427", "Golden-Eagle-427", " golden eagle 427 ", "GOLDEN_EAGLE_427"} {
			wantEqual(t, MustFindSession(t, s, id), want)
		}
	})

	t.Run("ErrInvalidSessionID", func(t *testing.T) {
		for _, id := range []string{"", "golden-eagle", "golden-eagle-42", "drop table sessions"} {
			_, err := s.FindSessionByID(context.Background(), id)
			wantCode(t, err, pentecost.EINVALIDSESSIONID)
		}
	})

	t.Run("ErrSessionNotFound", func(t *testing.T) {
		_, err := s.FindSessionByID(context.Background(), "silver-lamb-999")
		wantCode(t, err, pentecost.ESESSIONNOTFOUND)
	})

	t.Run("Ended", func(t *testing.T) {
		ended, err := s.EndSession(as("alice"), want.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, MustFindSession(t, s, want.ID), ended)
	})
}

func TestSessionService_FindSessions(t *testing.T) {
	db, clock := MustOpenDB(t)
	s := sqlite.NewSessionService(db)
	var created []*pentecost.Session // oldest first
	for _, owner := range []string{"alice", "bob", "alice", "bob", "alice"} {
		created = append(created, MustCreateSession(t, s, owner))
		clock.Add(time.Second)
	}
	ended, err := s.EndSession(as("bob"), created[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	created[1] = ended
	paused, err := s.UpdateSession(as("alice"), created[2].ID, pentecost.SessionUpdate{Status: ptr(pentecost.SessionPaused)})
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
		{"PagePastEnd", pentecost.SessionFilter{Offset: 10}, nil, 5},
		{"UnknownStatus", pentecost.SessionFilter{Status: ptr(pentecost.SessionStatus("bogus"))}, nil, 0},
		{"NoOwner", pentecost.SessionFilter{OwnerID: ptr("carol")}, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, total, err := s.FindSessions(context.Background(), tt.filter)
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
				wantEqual(t, got[i], tt.want[i])
			}
		})
	}

	t.Run("ExpiredCountsAsEnded", func(t *testing.T) {
		clock.Add(s.MaxIdle)
		got, total, err := s.FindSessions(context.Background(), pentecost.SessionFilter{Status: ptr(pentecost.SessionEnded)})
		if err != nil || total != 5 || len(got) != 5 {
			t.Fatalf("got %d of %d, %v; want all 5 ended", len(got), total, err)
		}
		for _, sess := range got {
			if sess.Status != pentecost.SessionEnded {
				t.Fatalf("status %q, want ended", sess.Status)
			}
		}
		if _, total, err := s.FindSessions(context.Background(), pentecost.SessionFilter{Status: ptr(pentecost.SessionActive)}); err != nil || total != 0 {
			t.Fatalf("active total = %d, %v; want 0", total, err)
		}
	})
}

func TestSessionService_FindSessions_Limit(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := sqlite.NewSessionService(db)
	for range sqlite.DefaultSessionLimit + 1 {
		MustCreateSession(t, s, "alice")
	}
	for _, tt := range []struct{ limit, want int }{{0, sqlite.DefaultSessionLimit}, {-5, sqlite.DefaultSessionLimit}, {sqlite.MaxSessionLimit + 1, sqlite.DefaultSessionLimit + 1}, {7, 7}} {
		got, total, err := s.FindSessions(context.Background(), pentecost.SessionFilter{Limit: tt.limit})
		if err != nil || len(got) != tt.want || total != sqlite.DefaultSessionLimit+1 {
			t.Fatalf("Limit %d: got %d of %d, %v; want %d", tt.limit, len(got), total, err, tt.want)
		}
	}
}

func TestSessionService_UpdateSession(t *testing.T) {
	// setup returns a service, its clock and a session alice owns, created
	// a minute before the clock's time.
	setup := func(t *testing.T) (*sqlite.SessionService, *Clock, *pentecost.Session) {
		db, clock := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
		sess := MustCreateSession(t, s, "alice")
		clock.Add(time.Minute)
		return s, clock, sess
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
			s, clock, sess := setup(t)
			got, err := s.UpdateSession(as("alice"), strings.ToUpper(sess.ID), tt.upd)
			if err != nil {
				t.Fatal(err)
			}
			now := clock.Millis()
			want := *sess
			want.LastActiveAt, want.ExpiresAt = now, now.Add(s.MaxIdle) // an owner's update counts as use
			tt.edit(&want, now)
			wantEqual(t, got, &want)
			wantEqual(t, MustFindSession(t, s, sess.ID), &want)
		})
	}

	t.Run("OKResume", func(t *testing.T) {
		s, clock, sess := setup(t)
		if _, err := s.UpdateSession(as("alice"), sess.ID, pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{Paused: ptr(true)}}); err != nil {
			t.Fatal(err)
		}
		clock.Add(time.Second)
		got, err := s.UpdateSession(as("alice"), sess.ID, pentecost.SessionUpdate{Status: ptr(pentecost.SessionActive)})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != pentecost.SessionActive || got.BroadcastState.Paused || !got.BroadcastState.ChangedAt.Equal(clock.Millis()) {
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
		{"ErrSpeakerState", as("alice"), "", pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{SpeakerState: ptr(strings.Repeat("x", sqlite.MaxSpeakerStateLen+1))}}, pentecost.EVALIDATIONFIELD},
		{"ErrLanguage", as("alice"), "", pentecost.SessionUpdate{SourceLanguage: ptr("klingon")}, pentecost.EINVALIDLANGUAGE},
		{"ErrLanguageUnsupported", as("alice"), "", pentecost.SessionUpdate{SourceLanguage: ptr("xx")}, pentecost.EUNSUPPORTEDLANG},
		{"ErrQualityTier", as("alice"), "", pentecost.SessionUpdate{QualityTier: ptr(pentecost.QualityTier("gold"))}, pentecost.EVALIDATIONFIELD},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _, sess := setup(t)
			id := tt.id
			if id == "" {
				id = sess.ID
			}
			_, err := s.UpdateSession(tt.ctx, id, tt.upd)
			wantCode(t, err, tt.code)
			wantEqual(t, MustFindSession(t, s, sess.ID), sess) // nothing changed
		})
	}

	t.Run("ErrSessionEnded", func(t *testing.T) {
		s, _, sess := setup(t)
		if _, err := s.EndSession(as("alice"), sess.ID); err != nil {
			t.Fatal(err)
		}
		_, err := s.UpdateSession(as("alice"), sess.ID, pentecost.SessionUpdate{Status: ptr(pentecost.SessionActive)})
		wantCode(t, err, pentecost.ESESSIONENDED)
	})

	t.Run("ErrSessionExpired", func(t *testing.T) {
		s, clock, sess := setup(t)
		clock.Add(s.MaxIdle)
		_, err := s.UpdateSession(as("alice"), sess.ID, pentecost.SessionUpdate{})
		wantCode(t, err, pentecost.ESESSIONENDED)
	})
}

func TestSessionService_EndSession(t *testing.T) {
	setup := func(t *testing.T) (*sqlite.SessionService, *Clock, *pentecost.Session) {
		db, clock := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
		sess := MustCreateSession(t, s, "alice")
		if err := s.SetListenerCount(context.Background(), sess.ID, 12); err != nil {
			t.Fatal(err)
		}
		sess.ListenerCount = 12
		clock.Add(time.Minute)
		return s, clock, sess
	}

	t.Run("OK", func(t *testing.T) {
		s, clock, sess := setup(t)
		got, err := s.EndSession(as("alice"), " "+sess.ID+" ")
		if err != nil {
			t.Fatal(err)
		}
		want := *sess
		want.Status, want.EndedAt, want.ListenerCount = pentecost.SessionEnded, clock.Millis(), 0
		wantEqual(t, got, &want)
		wantEqual(t, MustFindSession(t, s, sess.ID), &want)
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
			s, _, sess := setup(t)
			id := tt.id
			if id == "" {
				id = sess.ID
			}
			_, err := s.EndSession(tt.ctx, id)
			wantCode(t, err, tt.code)
			wantEqual(t, MustFindSession(t, s, sess.ID), sess)
		})
	}

	t.Run("ErrSessionEnded", func(t *testing.T) {
		s, _, sess := setup(t)
		if _, err := s.EndSession(as("alice"), sess.ID); err != nil {
			t.Fatal(err)
		}
		_, err := s.EndSession(as("alice"), sess.ID)
		wantCode(t, err, pentecost.ESESSIONENDED)
	})
}

func TestSessionService_TouchSession(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		db, clock := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
		sess := MustCreateSession(t, s, "alice")
		clock.Add(time.Hour)
		if err := s.TouchSession(context.Background(), sess.ID); err != nil {
			t.Fatal(err)
		}
		want := *sess
		want.LastActiveAt, want.ExpiresAt = clock.Millis(), clock.Millis().Add(s.MaxIdle)
		wantEqual(t, MustFindSession(t, s, sess.ID), &want)
	})

	t.Run("ErrSessionNotFound", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
		for _, id := range []string{"silver-lamb-999", "not an id"} {
			wantCode(t, s.TouchSession(context.Background(), id), pentecost.ESESSIONNOTFOUND)
		}
	})

	t.Run("ErrSessionEnded", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
		sess := MustCreateSession(t, s, "alice")
		ended, err := s.EndSession(as("alice"), sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, s.TouchSession(context.Background(), sess.ID), pentecost.ESESSIONENDED)
		wantEqual(t, MustFindSession(t, s, sess.ID), ended)
	})

	t.Run("ErrSessionExpired", func(t *testing.T) {
		db, clock := MustOpenDB(t)
		s := sqlite.NewSessionService(db)
		sess := MustCreateSession(t, s, "alice")
		clock.Add(s.MaxIdle)
		wantCode(t, s.TouchSession(context.Background(), sess.ID), pentecost.ESESSIONENDED)
	})
}

func TestSessionService_SetListenerCount(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := sqlite.NewSessionService(db)
	sess := MustCreateSession(t, s, "alice")

	t.Run("OK", func(t *testing.T) {
		for _, n := range []int{3, 0, 250} {
			if err := s.SetListenerCount(context.Background(), sess.ID, n); err != nil {
				t.Fatal(err)
			}
			if got := MustFindSession(t, s, sess.ID); got.ListenerCount != n || !got.LastActiveAt.Equal(sess.LastActiveAt) {
				t.Fatalf("got count %d, last active %v; want %d, unchanged", got.ListenerCount, got.LastActiveAt, n)
			}
		}
	})

	t.Run("ErrNegative", func(t *testing.T) {
		wantCode(t, s.SetListenerCount(context.Background(), sess.ID, -1), pentecost.EVALIDATIONFIELD)
	})

	t.Run("ErrSessionNotFound", func(t *testing.T) {
		wantCode(t, s.SetListenerCount(context.Background(), "silver-lamb-999", 1), pentecost.ESESSIONNOTFOUND)
		wantCode(t, s.SetListenerCount(context.Background(), "??", 1), pentecost.ESESSIONNOTFOUND)
	})

	t.Run("EndedStaysZero", func(t *testing.T) {
		if _, err := s.EndSession(as("alice"), sess.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.SetListenerCount(context.Background(), sess.ID, 4); err != nil {
			t.Fatal(err)
		}
		if got := MustFindSession(t, s, sess.ID); got.ListenerCount != 0 {
			t.Fatalf("count = %d, want 0", got.ListenerCount)
		}
	})
}

func TestSessionService_ExpireSessions(t *testing.T) {
	db, clock := MustOpenDB(t)
	s := sqlite.NewSessionService(db)
	idle := MustCreateSession(t, s, "alice")
	busy := MustCreateSession(t, s, "bob")
	if err := s.SetListenerCount(context.Background(), idle.ID, 5); err != nil {
		t.Fatal(err)
	}

	// Just before the idle expiry both live; a touch postpones bob's.
	clock.Add(s.MaxIdle - time.Millisecond)
	if err := s.TouchSession(context.Background(), busy.ID); err != nil {
		t.Fatal(err)
	}
	if expired, err := s.ExpireSessions(context.Background()); err != nil || len(expired) != 0 {
		t.Fatalf("ExpireSessions = %v, %v; want none yet", expired, err)
	}
	if got := MustFindSession(t, s, idle.ID); got.Status != pentecost.SessionActive {
		t.Fatalf("status %q before expiry, want active", got.Status)
	}

	// At ExpiresAt alice's session is reported ended before any sweep.
	clock.Add(time.Millisecond)
	want := *idle
	want.Status, want.EndedAt, want.ListenerCount = pentecost.SessionEnded, idle.ExpiresAt, 0
	wantEqual(t, MustFindSession(t, s, idle.ID), &want)

	// The sweep ends it for good, with the same figures, exactly once.
	expired, err := s.ExpireSessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(expired) != 1 {
		t.Fatalf("expired %d sessions, want 1", len(expired))
	}
	wantEqual(t, expired[0], &want)
	wantEqual(t, MustFindSession(t, s, idle.ID), &want)
	if again, err := s.ExpireSessions(context.Background()); err != nil || len(again) != 0 {
		t.Fatalf("second sweep = %v, %v; want none", again, err)
	}
	if got := MustFindSession(t, s, busy.ID); got.Status != pentecost.SessionActive {
		t.Fatalf("touched session status %q, want active", got.Status)
	}

	// Bob's session runs out MaxIdle after its touch.
	clock.Add(s.MaxIdle - time.Millisecond)
	if expired, err := s.ExpireSessions(context.Background()); err != nil || len(expired) != 1 || expired[0].ID != busy.ID {
		t.Fatalf("ExpireSessions = %v, %v; want bob's session", expired, err)
	}
}

func TestSessionService_PurgeSessions(t *testing.T) {
	db, clock := MustOpenDB(t)
	s := sqlite.NewSessionService(db)
	s.MaxIdle = 2 * s.Retention // so that one touch keeps bob's session live throughout
	ended := MustCreateSession(t, s, "alice")
	live := MustCreateSession(t, s, "bob")
	if _, err := s.EndSession(as("alice"), ended.ID); err != nil {
		t.Fatal(err)
	}

	purge := func(want int) {
		t.Helper()
		if n, err := s.PurgeSessions(context.Background()); err != nil || n != want {
			t.Fatalf("PurgeSessions = %d, %v; want %d", n, err, want)
		}
	}

	clock.Add(s.Retention - time.Millisecond)
	if err := s.TouchSession(context.Background(), live.ID); err != nil { // keep bob's live
		t.Fatal(err)
	}
	purge(0)
	MustFindSession(t, s, ended.ID)

	clock.Add(time.Millisecond)
	purge(1)
	_, err := s.FindSessionByID(context.Background(), ended.ID)
	wantCode(t, err, pentecost.ESESSIONNOTFOUND)
	if got := MustFindSession(t, s, live.ID); got.Status != pentecost.SessionActive {
		t.Fatalf("live session status %q, want active", got.Status)
	}

	// A session that expired is purged Retention after its ExpiresAt, swept or not.
	expiresAt := MustFindSession(t, s, live.ID).ExpiresAt
	clock.Add(expiresAt.Sub(clock.Millis()) + s.Retention - time.Millisecond)
	purge(0)
	clock.Add(time.Millisecond)
	purge(1)
	_, err = s.FindSessionByID(context.Background(), live.ID)
	wantCode(t, err, pentecost.ESESSIONNOTFOUND)
}

func TestSessionService_Persistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pentecost.db")
	clock := NewClock()
	db := MustOpenDBAt(t, path, clock)
	s := sqlite.NewSessionService(db)

	live := MustCreateSession(t, s, "alice")
	clock.Add(time.Minute)
	live, err := s.UpdateSession(as("alice"), live.ID, pentecost.SessionUpdate{
		QualityTier:    ptr(pentecost.QualityPremium),
		BroadcastState: &pentecost.BroadcastStateUpdate{Paused: ptr(true), Muted: ptr(true), Volume: ptr(0.3), SpeakerState: ptr("praying")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetListenerCount(context.Background(), live.ID, 42); err != nil {
		t.Fatal(err)
	}
	live.ListenerCount = 42
	ended, err := s.EndSession(as("bob"), MustCreateSession(t, s, "bob").ID)
	if err != nil {
		t.Fatal(err)
	}
	MustCloseDB(t, db)

	db = MustOpenDBAt(t, path, clock)
	s = sqlite.NewSessionService(db)
	wantEqual(t, MustFindSession(t, s, live.ID), live)
	wantEqual(t, MustFindSession(t, s, ended.ID), ended)
}

func TestSessionService_ErrUnavailable(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := sqlite.NewSessionService(db)
	sess := MustCreateSession(t, s, "alice")
	MustCloseDB(t, db)

	ctx := as("alice")
	for name, call := range map[string]func() error{
		"CreateSession":   func() error { return s.CreateSession(ctx, &pentecost.Session{SourceLanguage: "en"}) },
		"FindSessionByID": func() error { _, err := s.FindSessionByID(ctx, sess.ID); return err },
		"FindSessions":    func() error { _, _, err := s.FindSessions(ctx, pentecost.SessionFilter{}); return err },
		"UpdateSession":   func() error { _, err := s.UpdateSession(ctx, sess.ID, pentecost.SessionUpdate{}); return err },
		"EndSession":      func() error { _, err := s.EndSession(ctx, sess.ID); return err },
		"TouchSession":    func() error { return s.TouchSession(ctx, sess.ID) },
		"SetListenerCount": func() error {
			return s.SetListenerCount(ctx, sess.ID, 1)
		},
		"ExpireSessions": func() error { _, err := s.ExpireSessions(ctx); return err },
		"PurgeSessions":  func() error { _, err := s.PurgeSessions(ctx); return err },
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			wantCode(t, err, pentecost.EUNAVAILABLE)
			if msg := pentecost.ErrorMessage(err); msg != "Store unavailable." {
				t.Fatalf("message = %q", msg)
			}
		})
	}
}
