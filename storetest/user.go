package storetest

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
)

// UserSetup is a fresh, empty UserStore and what the suite needs around it.
type UserSetup struct {
	Users pentecost.UserStore
	Clock *Clock
	// Break makes the store unreachable for the rest of the test.
	Break func()
}

// UserFactory returns a fresh UserStore.
type UserFactory func(t *testing.T) UserSetup

func mustCreateUser(tb testing.TB, s pentecost.UserStore, name, hash string) *pentecost.User {
	tb.Helper()
	u := &pentecost.User{Name: name, PasswordHash: hash}
	if err := s.CreateUser(context.Background(), u); err != nil {
		tb.Fatal(err)
	}
	return u
}

// RunUserStoreTests runs the UserStore suite against fresh stores from newStore.
func RunUserStoreTests(t *testing.T, newStore UserFactory) {
	ctx := context.Background()

	t.Run("CreateUser", func(t *testing.T) {
		t.Run("OK", func(t *testing.T) {
			e := newStore(t)
			u := &pentecost.User{ID: "ignored", Name: "Pastor.John_2", Issuer: "other", PasswordHash: "$argon2id$v=19$x"}
			if err := e.Users.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			now := e.Clock.Millis()
			want := &pentecost.User{ID: "Pastor.John_2", Name: "Pastor.John_2", Issuer: pentecost.EmbeddedIssuer, PasswordHash: "$argon2id$v=19$x", CreatedAt: now, PasswordChangedAt: now}
			if !reflect.DeepEqual(u, want) {
				t.Fatalf("got %+v, want %+v", u, want)
			}
			got, err := e.Users.FindUserByName(ctx, "Pastor.John_2")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("found %+v, want %+v", got, want)
			}
		})

		t.Run("CaseSensitive", func(t *testing.T) {
			e := newStore(t)
			mustCreateUser(t, e.Users, "alice", "h1")
			mustCreateUser(t, e.Users, "Alice", "h2")
			if u, err := e.Users.FindUserByName(ctx, "Alice"); err != nil || u.PasswordHash != "h2" {
				t.Fatalf("got %+v, %v", u, err)
			}
		})

		t.Run("ErrConflict", func(t *testing.T) {
			e := newStore(t)
			mustCreateUser(t, e.Users, "alice", "h1")
			err := e.Users.CreateUser(ctx, &pentecost.User{Name: "alice", PasswordHash: "h2"})
			wantCode(t, err, pentecost.ECONFLICT)
			if u, err := e.Users.FindUserByName(ctx, "alice"); err != nil || u.PasswordHash != "h1" {
				t.Fatalf("got %+v, %v; want the first account untouched", u, err)
			}
		})

		t.Run("ErrConflictConcurrent", func(t *testing.T) {
			e := newStore(t)
			const n = 8
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { errs[i] = e.Users.CreateUser(ctx, &pentecost.User{Name: "alice", PasswordHash: "h"}) })
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				switch pentecost.ErrorCode(err) {
				case "":
					ok++
				case pentecost.ECONFLICT:
				default:
					t.Fatalf("err = %v", err)
				}
			}
			if ok != 1 {
				t.Fatalf("%d accounts created with one name, want 1", ok)
			}
		})

		t.Run("ErrValidationField", func(t *testing.T) {
			e := newStore(t)
			for _, tt := range []struct{ name, hash, field string }{
				{"", "h", "name"},
				{"al ice", "h", "name"},
				{"alice/../bob", "h", "name"},
				{"ålice", "h", "name"},
				{"{alice}", "h", "name"},
				{strings.Repeat("a", 65), "h", "name"},
				{"alice", "", "password"},
			} {
				err := e.Users.CreateUser(ctx, &pentecost.User{Name: tt.name, PasswordHash: tt.hash})
				wantCode(t, err, pentecost.EVALIDATIONFIELD)
				if !reflect.DeepEqual(pentecost.ErrorDetails(err), map[string]string{"field": tt.field}) {
					t.Fatalf("%q: details = %v, want field %q", tt.name, pentecost.ErrorDetails(err), tt.field)
				}
			}
			if users, err := e.Users.FindUsers(ctx); err != nil || len(users) != 0 {
				t.Fatalf("FindUsers = %v, %v; want none stored", users, err)
			}
		})
	})

	t.Run("FindUserByName", func(t *testing.T) {
		e := newStore(t)
		mustCreateUser(t, e.Users, "alice", "h")
		for _, name := range []string{"bob", "ALICE", "", "no such/name"} {
			_, err := e.Users.FindUserByName(ctx, name)
			wantCode(t, err, pentecost.EUSERNOTFOUND)
		}
	})

	t.Run("FindUsers", func(t *testing.T) {
		e := newStore(t)
		if users, err := e.Users.FindUsers(ctx); err != nil || users == nil || len(users) != 0 {
			t.Fatalf("FindUsers = %#v, %v; want an empty slice", users, err)
		}
		for _, name := range []string{"carol", "alice", "bob", "Zed"} {
			mustCreateUser(t, e.Users, name, "h-"+name)
		}
		users, err := e.Users.FindUsers(ctx)
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
		// By byte value: capitals first.
		if want := []string{"Zed", "alice", "bob", "carol"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("names = %v, want %v", names, want)
		}
	})

	t.Run("UpdateUserPassword", func(t *testing.T) {
		e := newStore(t)
		created := mustCreateUser(t, e.Users, "alice", "old")

		t.Run("OK", func(t *testing.T) {
			e.Clock.Add(time.Hour)
			if err := e.Users.UpdateUserPassword(ctx, "alice", "new"); err != nil {
				t.Fatal(err)
			}
			u, err := e.Users.FindUserByName(ctx, "alice")
			if err != nil || u.PasswordHash != "new" {
				t.Fatalf("got %+v, %v", u, err)
			}
			if !u.PasswordChangedAt.Equal(e.Clock.Millis()) || !u.CreatedAt.Equal(created.CreatedAt) {
				t.Fatalf("PasswordChangedAt %v (want %v), CreatedAt %v (want %v)",
					u.PasswordChangedAt, e.Clock.Millis(), u.CreatedAt, created.CreatedAt)
			}
		})
		t.Run("ErrUserNotFound", func(t *testing.T) {
			wantCode(t, e.Users.UpdateUserPassword(ctx, "bob", "new"), pentecost.EUSERNOTFOUND)
		})
		t.Run("ErrValidationField", func(t *testing.T) {
			wantCode(t, e.Users.UpdateUserPassword(ctx, "alice", ""), pentecost.EVALIDATIONFIELD)
		})
	})

	t.Run("DeleteUser", func(t *testing.T) {
		e := newStore(t)
		mustCreateUser(t, e.Users, "alice", "h")
		mustCreateUser(t, e.Users, "bob", "h")
		t.Run("OK", func(t *testing.T) {
			if err := e.Users.DeleteUser(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			_, err := e.Users.FindUserByName(ctx, "alice")
			wantCode(t, err, pentecost.EUSERNOTFOUND)
			if _, err := e.Users.FindUserByName(ctx, "bob"); err != nil {
				t.Fatal(err)
			}
			if users, err := e.Users.FindUsers(ctx); err != nil || len(users) != 1 || users[0].Name != "bob" {
				t.Fatalf("FindUsers = %v, %v; want bob only", users, err)
			}
		})
		t.Run("ErrUserNotFound", func(t *testing.T) {
			wantCode(t, e.Users.DeleteUser(ctx, "alice"), pentecost.EUSERNOTFOUND)
		})
		t.Run("NameFreeAgain", func(t *testing.T) {
			mustCreateUser(t, e.Users, "alice", "h2")
		})
	})

	t.Run("ErrUnavailable", func(t *testing.T) {
		e := newStore(t)
		if e.Break == nil {
			t.Fatal("the factory must set UserSetup.Break")
		}
		mustCreateUser(t, e.Users, "alice", "h")
		e.Break()
		for _, tt := range []struct {
			name string
			call func() error
		}{
			{"CreateUser", func() error { return e.Users.CreateUser(ctx, &pentecost.User{Name: "bob", PasswordHash: "h"}) }},
			{"FindUserByName", func() error { _, err := e.Users.FindUserByName(ctx, "alice"); return err }},
			{"FindUsers", func() error { _, err := e.Users.FindUsers(ctx); return err }},
			{"UpdateUserPassword", func() error { return e.Users.UpdateUserPassword(ctx, "alice", "x") }},
			{"DeleteUser", func() error { return e.Users.DeleteUser(ctx, "alice") }},
		} {
			t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), pentecost.EUNAVAILABLE) })
		}
	})
}
