package auth_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	"github.com/pentecost/pentecost/sqlite"
)

// openUserStore opens a real SQLite store in a temp directory.
func openUserStore(tb testing.TB) *sqlite.UserStore {
	tb.Helper()
	db := sqlite.NewDB(filepath.Join(tb.TempDir(), "pentecost.db"))
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return sqlite.NewUserStore(db)
}

func newAccounts(tb testing.TB) *auth.Accounts {
	tb.Helper()
	a := auth.NewAccounts(openUserStore(tb))
	a.Params = cheapParams
	return a
}

func TestAccounts_Add(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		a := newAccounts(t)
		u, err := a.Add(t.Context(), "ada", "correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		if u.ID != "ada" || u.Name != "ada" || u.Issuer != pentecost.EmbeddedIssuer || u.PasswordHash != "" {
			t.Fatalf("user = %+v", u)
		}
		// The stored hash is a real argon2id hash of the password.
		stored, err := a.Users.FindUserByName(t.Context(), "ada")
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := auth.CheckPassword(stored.PasswordHash, "correct horse battery"); err != nil || !ok {
			t.Fatalf("stored hash does not match: %v, %v", ok, err)
		}
	})

	for _, tc := range []struct {
		name, user, password, code string
	}{
		{"ErrShortPassword", "ada", "short", pentecost.EVALIDATIONFIELD},
		{"ErrLongPassword", "ada", strings.Repeat("x", auth.MaxPasswordLength+1), pentecost.EVALIDATIONFIELD},
		{"ErrEmptyName", "", "correct horse battery", pentecost.EVALIDATIONFIELD},
		{"ErrNameWithColon", "corp:user-42", "correct horse battery", pentecost.EVALIDATIONFIELD},
		{"ErrNameWithSpace", "ada lovelace", "correct horse battery", pentecost.EVALIDATIONFIELD},
		{"ErrNameTooLong", strings.Repeat("a", auth.MaxNameLength+1), "correct horse battery", pentecost.EVALIDATIONFIELD},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAccounts(t)
			_, err := a.Add(t.Context(), tc.user, tc.password)
			wantCode(t, err, tc.code)
			if users, err := a.List(t.Context()); err != nil || len(users) != 0 {
				t.Fatalf("List = %v, %v; want nothing stored", users, err)
			}
		})
	}

	t.Run("ErrConflict", func(t *testing.T) {
		a := newAccounts(t)
		if _, err := a.Add(t.Context(), "ada", "correct horse battery"); err != nil {
			t.Fatal(err)
		}
		_, err := a.Add(t.Context(), "ada", "another password")
		wantCode(t, err, pentecost.ECONFLICT)
	})
}

func TestAccounts_List(t *testing.T) {
	a := newAccounts(t)
	for _, name := range []string{"grace", "ada"} {
		if _, err := a.Add(t.Context(), name, "correct horse battery"); err != nil {
			t.Fatal(err)
		}
	}
	users, err := a.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		if u.PasswordHash != "" {
			t.Fatalf("List leaked the hash of %q", u.Name)
		}
		names = append(names, u.Name)
	}
	if got := strings.Join(names, ","); got != "ada,grace" {
		t.Fatalf("names = %s, want ada,grace", got)
	}
}

func TestAccounts_Authenticate(t *testing.T) {
	a := newAccounts(t)
	if _, err := a.Add(t.Context(), "ada", "correct horse battery"); err != nil {
		t.Fatal(err)
	}

	t.Run("OK", func(t *testing.T) {
		u, err := a.Authenticate(t.Context(), "ada", "correct horse battery")
		if err != nil {
			t.Fatal(err)
		}
		if u.ID != "ada" || u.Issuer != pentecost.EmbeddedIssuer || u.PasswordHash != "" {
			t.Fatalf("user = %+v", u)
		}
	})

	for _, tc := range []struct{ name, user, password string }{
		{"ErrWrongPassword", "ada", "correct horse batterY"},
		{"ErrUnknownUser", "grace", "correct horse battery"},
		{"ErrInvalidName", "a:b", "correct horse battery"},
		{"ErrEmptyPassword", "ada", ""},
		{"ErrHugePassword", "ada", strings.Repeat("x", 1<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := a.Authenticate(t.Context(), tc.user, tc.password)
			wantCode(t, err, pentecost.EAUTHCREDENTIALS)
			if u != nil {
				t.Fatalf("user = %+v, want nil", u)
			}
			// Unknown name and wrong password read exactly alike.
			if msg := pentecost.ErrorMessage(err); msg != "Invalid name or password." {
				t.Fatalf("message = %q", msg)
			}
		})
	}
}

func TestAccounts_SetPassword(t *testing.T) {
	a := newAccounts(t)
	if _, err := a.Add(t.Context(), "ada", "correct horse battery"); err != nil {
		t.Fatal(err)
	}

	t.Run("OK", func(t *testing.T) {
		if err := a.SetPassword(t.Context(), "ada", "new password 2"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authenticate(t.Context(), "ada", "new password 2"); err != nil {
			t.Fatal(err)
		}
		_, err := a.Authenticate(t.Context(), "ada", "correct horse battery")
		wantCode(t, err, pentecost.EAUTHCREDENTIALS)
	})
	t.Run("ErrUserNotFound", func(t *testing.T) {
		wantCode(t, a.SetPassword(t.Context(), "grace", "new password 2"), pentecost.EUSERNOTFOUND)
	})
	t.Run("ErrPolicy", func(t *testing.T) {
		wantCode(t, a.SetPassword(t.Context(), "ada", "short"), pentecost.EVALIDATIONFIELD)
		if _, err := a.Authenticate(t.Context(), "ada", "new password 2"); err != nil {
			t.Fatalf("password changed by a refused update: %v", err)
		}
	})
}

func TestAccounts_Remove(t *testing.T) {
	a := newAccounts(t)
	if _, err := a.Add(t.Context(), "ada", "correct horse battery"); err != nil {
		t.Fatal(err)
	}

	t.Run("OK", func(t *testing.T) {
		if err := a.Remove(t.Context(), "ada"); err != nil {
			t.Fatal(err)
		}
		_, err := a.Authenticate(t.Context(), "ada", "correct horse battery")
		wantCode(t, err, pentecost.EAUTHCREDENTIALS)
	})
	t.Run("ErrUserNotFound", func(t *testing.T) {
		wantCode(t, a.Remove(t.Context(), "ada"), pentecost.EUSERNOTFOUND)
	})
}

// TestEmbedded_RemovedAccount checks that with Users set, a token does not
// outlive its account.
func TestEmbedded_RemovedAccount(t *testing.T) {
	a := newAccounts(t)
	if _, err := a.Add(t.Context(), "ada", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	u, err := a.Authenticate(t.Context(), "ada", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	e := auth.NewEmbedded(newEd25519Key(t))
	e.Users = a.Users
	tok, err := e.IssueToken(t.Context(), u, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("OK", func(t *testing.T) {
		if _, err := e.VerifyToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrAccountRemoved", func(t *testing.T) {
		if err := a.Remove(t.Context(), "ada"); err != nil {
			t.Fatal(err)
		}
		_, err := e.VerifyToken(t.Context(), tok)
		wantCode(t, err, pentecost.EAUTHINVALID)
	})
}

// TestAccounts_MaxConcurrent checks that no more than MaxConcurrent password
// checks run at once, that the others wait their turn, and that one whose
// context ends while waiting gives up without running.
func TestAccounts_MaxConcurrent(t *testing.T) {
	a := newAccounts(t)
	a.MaxConcurrent = 2
	if _, err := a.Add(t.Context(), "ada", "correct horse battery"); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var running, most int
	entered := make(chan struct{}, 16)
	proceed := make(chan struct{})
	auth.SetCheckHook(a, func() {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		entered <- struct{}{}
		<-proceed
		mu.Lock()
		running--
		mu.Unlock()
	})

	errs := make(chan error, 16)
	start := func(ctx context.Context, name string) {
		go func() {
			_, err := a.Authenticate(ctx, name, "correct horse battery")
			errs <- err
		}()
	}
	// A known and an unknown name alike take a slot: both hash.
	start(t.Context(), "ada")
	start(t.Context(), "grace")
	<-entered
	<-entered

	// Both slots are held: a caller that has given up does not get in. Its
	// name is not even looked up (it cannot exist), so only the wait for a
	// slot can stop it.
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	start(cancelled, "no:such")
	select {
	case err := <-errs:
		if err != context.Canceled {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-entered:
		t.Fatal("a check ran beyond MaxConcurrent")
	}

	// Four more queue and go through as slots come free.
	const queued = 4
	for i := range queued {
		start(t.Context(), []string{"ada", "grace"}[i%2])
	}
	for range 2 + queued {
		proceed <- struct{}{}
		if err := <-errs; err != nil && pentecost.ErrorCode(err) != pentecost.EAUTHCREDENTIALS {
			t.Fatalf("Authenticate: %v", err)
		}
	}
	if got := len(entered); got != queued {
		t.Fatalf("%d queued checks ran, want %d", got, queued)
	}
	mu.Lock()
	defer mu.Unlock()
	if most != a.MaxConcurrent {
		t.Fatalf("at most %d checks ran at once, want %d", most, a.MaxConcurrent)
	}
}

// TestEmbedded_PasswordChanged checks that with Users set, setting a new
// password, or removing an account and adding it again, refuses every token
// issued before, while tokens issued since are accepted.
func TestEmbedded_PasswordChanged(t *testing.T) {
	type fixture struct {
		a   *auth.Accounts
		e   *auth.Embedded
		now *time.Time
	}
	setup := func(t *testing.T) fixture {
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		clock := func() time.Time { return now }
		db := sqlite.NewDB(filepath.Join(t.TempDir(), "pentecost.db"))
		db.Now = clock
		if err := db.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		a := auth.NewAccounts(sqlite.NewUserStore(db))
		a.Params, a.Now = cheapParams, clock
		e := auth.NewEmbedded(newEd25519Key(t))
		e.Now, e.Users = clock, a.Users
		for _, name := range []string{"ada", "grace"} {
			if _, err := a.Add(t.Context(), name, "correct horse battery"); err != nil {
				t.Fatal(err)
			}
		}
		return fixture{a: a, e: e, now: &now}
	}
	issue := func(t *testing.T, f fixture, name string) string {
		t.Helper()
		tok, err := f.e.IssueToken(t.Context(), &pentecost.User{ID: name, Name: name}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	verify := func(t *testing.T, f fixture, tok string) error {
		_, err := f.e.VerifyToken(t.Context(), tok)
		return err
	}

	for _, tt := range []struct {
		name   string
		change func(t *testing.T, f fixture)
	}{
		{"ErrPasswordChanged", func(t *testing.T, f fixture) {
			if err := f.a.SetPassword(t.Context(), "ada", "another password"); err != nil {
				t.Fatal(err)
			}
		}},
		{"ErrAccountAddedAgain", func(t *testing.T, f fixture) {
			if err := f.a.Remove(t.Context(), "ada"); err != nil {
				t.Fatal(err)
			}
			if _, err := f.a.Add(t.Context(), "ada", "correct horse battery"); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			old, other := issue(t, f, "ada"), issue(t, f, "grace")
			if err := verify(t, f, old); err != nil {
				t.Fatalf("before the change: %v (%s)", err, auth.Reason(err))
			}

			// Half a second into a later second: iat, in whole seconds,
			// is then before the change but in the same second.
			*f.now = f.now.Add(1500 * time.Millisecond)
			tt.change(t, f)
			wantCode(t, verify(t, f, old), pentecost.EAUTHINVALID)
			if err := verify(t, f, issue(t, f, "ada")); err != nil {
				t.Fatalf("token issued in the second of the change: %v (%s)", err, auth.Reason(err))
			}
			if err := verify(t, f, other); err != nil {
				t.Fatalf("another account's token: %v (%s)", err, auth.Reason(err))
			}
		})
	}
}

// TestEmbedded_Role checks that a token's user has the role the store
// holds now: an admin demoted while its token is valid is a speaker at its
// next verification, and promoted back an admin, with the same token.
func TestEmbedded_Role(t *testing.T) {
	a := newAccounts(t)
	for _, name := range []string{"ada", "grace"} {
		if _, err := a.AddWithRole(t.Context(), name, "correct horse battery", pentecost.RoleAdmin); err != nil {
			t.Fatal(err)
		}
	}
	e := auth.NewEmbedded(newEd25519Key(t))
	e.Users = a.Users
	tok, err := e.IssueToken(t.Context(), &pentecost.User{ID: "ada", Name: "ada"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	role := func() pentecost.Role {
		t.Helper()
		u, err := e.VerifyToken(t.Context(), tok)
		if err != nil {
			t.Fatal(err)
		}
		return u.Role
	}
	if got := role(); got != pentecost.RoleAdmin {
		t.Fatalf("role = %q, want admin", got)
	}
	if err := a.SetRole(t.Context(), "ada", pentecost.RoleSpeaker); err != nil {
		t.Fatal(err)
	}
	if got := role(); got != pentecost.RoleSpeaker {
		t.Fatalf("after demotion role = %q, want speaker", got)
	}
	if err := a.SetRole(t.Context(), "ada", pentecost.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if got := role(); got != pentecost.RoleAdmin {
		t.Fatalf("after promotion role = %q, want admin", got)
	}

	t.Run("WithoutStore", func(t *testing.T) {
		// Nothing to read the role from: nobody is an admin.
		bare := auth.NewEmbedded(e.Key)
		u, err := bare.VerifyToken(t.Context(), tok)
		if err != nil || u.IsAdmin() {
			t.Fatalf("got %+v, %v; want a speaker", u, err)
		}
	})
}

func TestAccounts_AddWithRole(t *testing.T) {
	a := newAccounts(t)
	u, err := a.AddWithRole(t.Context(), "ada", "correct horse battery", pentecost.RoleAdmin)
	if err != nil || u.Role != pentecost.RoleAdmin {
		t.Fatalf("got %+v, %v", u, err)
	}
	if u, err := a.Add(t.Context(), "grace", "correct horse battery"); err != nil || u.Role != pentecost.RoleSpeaker {
		t.Fatalf("Add: got %+v, %v; want a speaker", u, err)
	}
	_, err = a.AddWithRole(t.Context(), "linus", "correct horse battery", "root")
	wantCode(t, err, pentecost.EVALIDATIONFIELD)
	if _, err := a.Find(t.Context(), "linus"); pentecost.ErrorCode(err) != pentecost.EUSERNOTFOUND {
		t.Fatalf("an account with a bad role was stored: %v", err)
	}
}
