package auth_test

import (
	"path/filepath"
	"strings"
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
