package sqlite_test

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sqlite"
)

// MustCreateUser stores an account or fails the test.
func MustCreateUser(tb testing.TB, s *sqlite.UserStore, name, hash string) *pentecost.User {
	tb.Helper()
	u := &pentecost.User{Name: name, PasswordHash: hash}
	if err := s.CreateUser(context.Background(), u); err != nil {
		tb.Fatal(err)
	}
	return u
}

func TestUserStore_CreateUser(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		db, clock := MustOpenDB(t)
		s := sqlite.NewUserStore(db)
		u := &pentecost.User{ID: "ignored", Name: "Pastor.John_2", Issuer: "other", PasswordHash: "$argon2id$v=19$x"}
		if err := s.CreateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
		want := &pentecost.User{ID: "Pastor.John_2", Name: "Pastor.John_2", Issuer: pentecost.EmbeddedIssuer, PasswordHash: "$argon2id$v=19$x", CreatedAt: clock.Millis(), PasswordChangedAt: clock.Millis()}
		if !reflect.DeepEqual(u, want) {
			t.Fatalf("got %+v, want %+v", u, want)
		}
		got, err := s.FindUserByName(context.Background(), "Pastor.John_2")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("found %+v, want %+v", got, want)
		}
	})

	t.Run("CaseSensitive", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		s := sqlite.NewUserStore(db)
		MustCreateUser(t, s, "alice", "h1")
		MustCreateUser(t, s, "Alice", "h2")
		if u, err := s.FindUserByName(context.Background(), "Alice"); err != nil || u.PasswordHash != "h2" {
			t.Fatalf("got %+v, %v", u, err)
		}
	})

	t.Run("ErrConflict", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		s := sqlite.NewUserStore(db)
		MustCreateUser(t, s, "alice", "h1")
		err := s.CreateUser(context.Background(), &pentecost.User{Name: "alice", PasswordHash: "h2"})
		wantCode(t, err, pentecost.ECONFLICT)
		if u, err := s.FindUserByName(context.Background(), "alice"); err != nil || u.PasswordHash != "h1" {
			t.Fatalf("got %+v, %v; want the first account untouched", u, err)
		}
	})

	t.Run("ErrValidationField", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		s := sqlite.NewUserStore(db)
		for _, tt := range []struct{ name, hash, field string }{
			{"", "h", "name"},
			{"al ice", "h", "name"},
			{"alice/../bob", "h", "name"},
			{"ålice", "h", "name"},
			{strings.Repeat("a", 65), "h", "name"},
			{"alice", "", "password"},
		} {
			err := s.CreateUser(context.Background(), &pentecost.User{Name: tt.name, PasswordHash: tt.hash})
			wantCode(t, err, pentecost.EVALIDATIONFIELD)
			if !reflect.DeepEqual(pentecost.ErrorDetails(err), map[string]string{"field": tt.field}) {
				t.Fatalf("%q: details = %v, want field %q", tt.name, pentecost.ErrorDetails(err), tt.field)
			}
		}
		if users, err := s.FindUsers(context.Background()); err != nil || len(users) != 0 {
			t.Fatalf("FindUsers = %v, %v; want none stored", users, err)
		}
	})
}

func TestUserStore_FindUserByName(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := sqlite.NewUserStore(db)
	MustCreateUser(t, s, "alice", "h")
	for _, name := range []string{"bob", "ALICE", "", "no such/name"} {
		_, err := s.FindUserByName(context.Background(), name)
		wantCode(t, err, pentecost.EUSERNOTFOUND)
	}
}

func TestUserStore_FindUsers(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := sqlite.NewUserStore(db)
	if users, err := s.FindUsers(context.Background()); err != nil || users == nil || len(users) != 0 {
		t.Fatalf("FindUsers = %#v, %v; want an empty slice", users, err)
	}
	for _, name := range []string{"carol", "alice", "bob"} {
		MustCreateUser(t, s, name, "h-"+name)
	}
	users, err := s.FindUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		if u.PasswordHash != "h-"+u.Name || u.ID != u.Name || u.Issuer != pentecost.EmbeddedIssuer {
			t.Fatalf("user %+v", u)
		}
		names = append(names, u.Name)
	}
	if want := []string{"alice", "bob", "carol"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("names = %v, want %v", names, want)
	}
}

func TestUserStore_UpdateUserPassword(t *testing.T) {
	db, clock := MustOpenDB(t)
	s := sqlite.NewUserStore(db)
	created := MustCreateUser(t, s, "alice", "old")

	t.Run("OK", func(t *testing.T) {
		clock.Add(time.Hour)
		if err := s.UpdateUserPassword(context.Background(), "alice", "new"); err != nil {
			t.Fatal(err)
		}
		u, err := s.FindUserByName(context.Background(), "alice")
		if err != nil || u.PasswordHash != "new" {
			t.Fatalf("got %+v, %v", u, err)
		}
		// The change is stamped; the account's creation is not touched.
		if !u.PasswordChangedAt.Equal(clock.Millis()) || !u.CreatedAt.Equal(created.CreatedAt) {
			t.Fatalf("PasswordChangedAt %v (want %v), CreatedAt %v (want %v)",
				u.PasswordChangedAt, clock.Millis(), u.CreatedAt, created.CreatedAt)
		}
	})

	t.Run("ErrUserNotFound", func(t *testing.T) {
		wantCode(t, s.UpdateUserPassword(context.Background(), "bob", "new"), pentecost.EUSERNOTFOUND)
	})

	t.Run("ErrValidationField", func(t *testing.T) {
		wantCode(t, s.UpdateUserPassword(context.Background(), "alice", ""), pentecost.EVALIDATIONFIELD)
	})
}

func TestUserStore_DeleteUser(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := sqlite.NewUserStore(db)
	MustCreateUser(t, s, "alice", "h")
	MustCreateUser(t, s, "bob", "h")

	t.Run("OK", func(t *testing.T) {
		if err := s.DeleteUser(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
		_, err := s.FindUserByName(context.Background(), "alice")
		wantCode(t, err, pentecost.EUSERNOTFOUND)
		if _, err := s.FindUserByName(context.Background(), "bob"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrUserNotFound", func(t *testing.T) {
		wantCode(t, s.DeleteUser(context.Background(), "alice"), pentecost.EUSERNOTFOUND)
	})
}

func TestUserStore_ErrUnavailable(t *testing.T) {
	db, _ := MustOpenDB(t)
	s := sqlite.NewUserStore(db)
	MustCreateUser(t, s, "alice", "h")
	MustCloseDB(t, db)
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"CreateUser":         func() error { return s.CreateUser(ctx, &pentecost.User{Name: "bob", PasswordHash: "h"}) },
		"FindUserByName":     func() error { _, err := s.FindUserByName(ctx, "alice"); return err },
		"FindUsers":          func() error { _, err := s.FindUsers(ctx); return err },
		"UpdateUserPassword": func() error { return s.UpdateUserPassword(ctx, "alice", "x") },
		"DeleteUser":         func() error { return s.DeleteUser(ctx, "alice") },
	} {
		t.Run(name, func(t *testing.T) { wantCode(t, call(), pentecost.EUNAVAILABLE) })
	}
}

// TestUserStore_MigratePasswordChangedAt checks that accounts stored before
// password_changed_at existed count their password as set at creation.
func TestUserStore_MigratePasswordChangedAt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pentecost.db")
	clock := NewClock()
	db := MustOpenDBAt(t, path, clock)
	created := MustCreateUser(t, sqlite.NewUserStore(db), "alice", "h")

	// Take the database back to before the migration.
	for _, q := range []string{
		`ALTER TABLE users DROP COLUMN password_changed_at`,
		`DELETE FROM migrations WHERE name LIKE '%password_changed_at%'`,
	} {
		if _, err := sqlite.SQLDB(db).Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	MustCloseDB(t, db)

	clock.Add(time.Hour)
	db = MustOpenDBAt(t, path, clock)
	u, err := sqlite.NewUserStore(db).FindUserByName(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !u.PasswordChangedAt.Equal(created.CreatedAt) {
		t.Fatalf("PasswordChangedAt = %v, want the creation time %v", u.PasswordChangedAt, created.CreatedAt)
	}
}
