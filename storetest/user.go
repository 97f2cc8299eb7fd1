package storetest

import (
	"context"
	"fmt"
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
	return mustCreateRole(tb, s, name, hash, "")
}

func mustCreateRole(tb testing.TB, s pentecost.UserStore, name, hash string, role pentecost.Role) *pentecost.User {
	tb.Helper()
	u := &pentecost.User{Name: name, PasswordHash: hash, Role: role}
	if err := s.CreateUser(context.Background(), u); err != nil {
		tb.Fatal(err)
	}
	return u
}

// roles returns every account's role by name.
func roles(tb testing.TB, s pentecost.UserStore) map[string]pentecost.Role {
	tb.Helper()
	users, err := s.FindUsers(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]pentecost.Role{}
	for _, u := range users {
		out[u.Name] = u.Role
	}
	return out
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
			want := &pentecost.User{ID: "Pastor.John_2", Name: "Pastor.John_2", Issuer: pentecost.EmbeddedIssuer, Role: pentecost.RoleSpeaker,
				PasswordHash: "$argon2id$v=19$x", CreatedAt: now, PasswordChangedAt: now}
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

		t.Run("Roles", func(t *testing.T) {
			e := newStore(t)
			for _, tt := range []struct {
				name       string
				role, want pentecost.Role
			}{
				{"ann", pentecost.RoleAdmin, pentecost.RoleAdmin},
				{"sam", pentecost.RoleSpeaker, pentecost.RoleSpeaker},
				{"nobody", "", pentecost.RoleSpeaker},
			} {
				u := mustCreateRole(t, e.Users, tt.name, "h", tt.role)
				if u.Role != tt.want {
					t.Fatalf("%s: created with role %q, want %q", tt.name, u.Role, tt.want)
				}
				if got, err := e.Users.FindUserByName(ctx, tt.name); err != nil || got.Role != tt.want {
					t.Fatalf("%s: found %+v, %v; want role %q", tt.name, got, err, tt.want)
				}
			}
			want := map[string]pentecost.Role{"ann": pentecost.RoleAdmin, "sam": pentecost.RoleSpeaker, "nobody": pentecost.RoleSpeaker}
			if got := roles(t, e.Users); !reflect.DeepEqual(got, want) {
				t.Fatalf("FindUsers roles = %v, want %v", got, want)
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
				{"alice", "h", "role"},
			} {
				var role pentecost.Role
				if tt.field == "role" {
					role = "root"
				}
				err := e.Users.CreateUser(ctx, &pentecost.User{Name: tt.name, PasswordHash: tt.hash, Role: role})
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
		t.Run("KeepsRole", func(t *testing.T) {
			mustCreateRole(t, e.Users, "ann", "old", pentecost.RoleAdmin)
			if err := e.Users.UpdateUserPassword(ctx, "ann", "new"); err != nil {
				t.Fatal(err)
			}
			if u, err := e.Users.FindUserByName(ctx, "ann"); err != nil || u.Role != pentecost.RoleAdmin {
				t.Fatalf("got %+v, %v; want still admin", u, err)
			}
		})
	})

	t.Run("UpdateUserRole", func(t *testing.T) {
		t.Run("OK", func(t *testing.T) {
			e := newStore(t)
			mustCreateRole(t, e.Users, "ann", "h", pentecost.RoleAdmin)
			created := mustCreateUser(t, e.Users, "sam", "h")
			e.Clock.Add(time.Hour)
			if err := e.Users.UpdateUserRole(ctx, "sam", pentecost.RoleAdmin); err != nil {
				t.Fatal(err)
			}
			u, err := e.Users.FindUserByName(ctx, "sam")
			if err != nil || u.Role != pentecost.RoleAdmin {
				t.Fatalf("got %+v, %v; want admin", u, err)
			}
			// A role is not a password: tokens issued before stay good.
			if !u.PasswordChangedAt.Equal(created.PasswordChangedAt) || u.PasswordHash != "h" {
				t.Fatalf("the role change touched the password: %+v", u)
			}
			// Now either admin may step down, and setting a role again changes nothing.
			if err := e.Users.UpdateUserRole(ctx, "ann", pentecost.RoleSpeaker); err != nil {
				t.Fatal(err)
			}
			if err := e.Users.UpdateUserRole(ctx, "ann", pentecost.RoleSpeaker); err != nil {
				t.Fatal(err)
			}
			if err := e.Users.UpdateUserRole(ctx, "sam", pentecost.RoleAdmin); err != nil {
				t.Fatal(err)
			}
			want := map[string]pentecost.Role{"ann": pentecost.RoleSpeaker, "sam": pentecost.RoleAdmin}
			if got := roles(t, e.Users); !reflect.DeepEqual(got, want) {
				t.Fatalf("roles = %v, want %v", got, want)
			}
		})
		t.Run("ErrConflictLastAdmin", func(t *testing.T) {
			e := newStore(t)
			mustCreateRole(t, e.Users, "ann", "h", pentecost.RoleAdmin)
			mustCreateUser(t, e.Users, "sam", "h")
			wantCode(t, e.Users.UpdateUserRole(ctx, "ann", pentecost.RoleSpeaker), pentecost.ECONFLICT)
			if u, err := e.Users.FindUserByName(ctx, "ann"); err != nil || u.Role != pentecost.RoleAdmin {
				t.Fatalf("got %+v, %v; want ann still admin", u, err)
			}
		})
		t.Run("ErrConflictConcurrent", func(t *testing.T) {
			// Two admins demoting each other at once: one of them stays.
			e := newStore(t)
			for round := range 4 {
				a, b := fmt.Sprintf("a%d", round), fmt.Sprintf("b%d", round)
				mustCreateRole(t, e.Users, a, "h", pentecost.RoleAdmin)
				mustCreateRole(t, e.Users, b, "h", pentecost.RoleAdmin)
				if round > 0 {
					// The previous round's survivor steps down now that others are admins.
					for name, role := range roles(t, e.Users) {
						if role == pentecost.RoleAdmin && name != a && name != b {
							if err := e.Users.UpdateUserRole(ctx, name, pentecost.RoleSpeaker); err != nil {
								t.Fatal(err)
							}
						}
					}
				}
				errs := make([]error, 2)
				var wg sync.WaitGroup
				for i, name := range []string{a, b} {
					wg.Go(func() { errs[i] = e.Users.UpdateUserRole(ctx, name, pentecost.RoleSpeaker) })
				}
				wg.Wait()
				assertOneAdminLeft(t, e.Users, errs)
			}
		})
		t.Run("ErrUserNotFound", func(t *testing.T) {
			e := newStore(t)
			mustCreateRole(t, e.Users, "ann", "h", pentecost.RoleAdmin)
			for _, name := range []string{"bob", "", "no such/name"} {
				wantCode(t, e.Users.UpdateUserRole(ctx, name, pentecost.RoleAdmin), pentecost.EUSERNOTFOUND)
				wantCode(t, e.Users.UpdateUserRole(ctx, name, pentecost.RoleSpeaker), pentecost.EUSERNOTFOUND)
			}
			if got := roles(t, e.Users); len(got) != 1 {
				t.Fatalf("accounts = %v, want ann only", got)
			}
		})
		t.Run("ErrValidationField", func(t *testing.T) {
			e := newStore(t)
			mustCreateRole(t, e.Users, "ann", "h", pentecost.RoleAdmin)
			for _, role := range []pentecost.Role{"", "root", "Admin"} {
				err := e.Users.UpdateUserRole(ctx, "ann", role)
				wantCode(t, err, pentecost.EVALIDATIONFIELD)
				if !reflect.DeepEqual(pentecost.ErrorDetails(err), map[string]string{"field": "role"}) {
					t.Fatalf("%q: details = %v, want field role", role, pentecost.ErrorDetails(err))
				}
			}
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

	t.Run("DeleteUserAdmin", func(t *testing.T) {
		t.Run("ErrConflictLastAdmin", func(t *testing.T) {
			e := newStore(t)
			mustCreateRole(t, e.Users, "ann", "h", pentecost.RoleAdmin)
			mustCreateUser(t, e.Users, "sam", "h")
			wantCode(t, e.Users.DeleteUser(ctx, "ann"), pentecost.ECONFLICT)
			if _, err := e.Users.FindUserByName(ctx, "ann"); err != nil {
				t.Fatalf("ann is gone: %v", err)
			}
			// Speakers go as before.
			if err := e.Users.DeleteUser(ctx, "sam"); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("OK", func(t *testing.T) {
			e := newStore(t)
			mustCreateRole(t, e.Users, "ann", "h", pentecost.RoleAdmin)
			mustCreateRole(t, e.Users, "bob", "h", pentecost.RoleAdmin)
			if err := e.Users.DeleteUser(ctx, "ann"); err != nil {
				t.Fatal(err)
			}
			// The name comes back as a speaker: it does not count as an
			// admin any more, so bob is the last one.
			mustCreateUser(t, e.Users, "ann", "h")
			wantCode(t, e.Users.DeleteUser(ctx, "bob"), pentecost.ECONFLICT)
			wantCode(t, e.Users.UpdateUserRole(ctx, "bob", pentecost.RoleSpeaker), pentecost.ECONFLICT)
			want := map[string]pentecost.Role{"ann": pentecost.RoleSpeaker, "bob": pentecost.RoleAdmin}
			if got := roles(t, e.Users); !reflect.DeepEqual(got, want) {
				t.Fatalf("roles = %v, want %v", got, want)
			}
		})
		t.Run("NoAdminAtAll", func(t *testing.T) {
			// Accounts from before roles may have no admin: they can still go.
			e := newStore(t)
			mustCreateUser(t, e.Users, "sam", "h")
			if err := e.Users.DeleteUser(ctx, "sam"); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("ErrConflictConcurrent", func(t *testing.T) {
			e := newStore(t)
			mustCreateRole(t, e.Users, "ann", "h", pentecost.RoleAdmin)
			mustCreateRole(t, e.Users, "bob", "h", pentecost.RoleAdmin)
			errs := make([]error, 3)
			var wg sync.WaitGroup
			wg.Go(func() { errs[0] = e.Users.DeleteUser(ctx, "ann") })
			wg.Go(func() { errs[1] = e.Users.DeleteUser(ctx, "bob") })
			wg.Go(func() { errs[2] = e.Users.UpdateUserRole(ctx, "bob", pentecost.RoleSpeaker) })
			wg.Wait()
			admins := 0
			for _, role := range roles(t, e.Users) {
				if role == pentecost.RoleAdmin {
					admins++
				}
			}
			if admins != 1 {
				t.Fatalf("%d admins left (errors %v), want 1", admins, errs)
			}
			for _, err := range errs {
				if c := pentecost.ErrorCode(err); c != "" && c != pentecost.ECONFLICT && c != pentecost.EUSERNOTFOUND {
					t.Fatalf("err = %v", err)
				}
			}
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
			{"UpdateUserRole", func() error { return e.Users.UpdateUserRole(ctx, "alice", pentecost.RoleAdmin) }},
			{"DeleteUser", func() error { return e.Users.DeleteUser(ctx, "alice") }},
		} {
			t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), pentecost.EUNAVAILABLE) })
		}
	})
}

// assertOneAdminLeft checks that of two admins demoting themselves at once
// exactly one succeeded, the other got ECONFLICT, and one admin is left.
func assertOneAdminLeft(tb testing.TB, s pentecost.UserStore, errs []error) {
	tb.Helper()
	ok, conflict := 0, 0
	for _, err := range errs {
		switch pentecost.ErrorCode(err) {
		case "":
			ok++
		case pentecost.ECONFLICT:
			conflict++
		default:
			tb.Fatalf("err = %v", err)
		}
	}
	admins := 0
	for _, role := range roles(tb, s) {
		if role == pentecost.RoleAdmin {
			admins++
		}
	}
	if ok != 1 || conflict != 1 || admins != 1 {
		tb.Fatalf("%d demoted, %d refused, %d admins left; want 1, 1, 1", ok, conflict, admins)
	}
}
