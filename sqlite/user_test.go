package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sqlite"
	"github.com/pentecost/pentecost/storetest"
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

// TestUserStore_MigratePasswordChangedAt checks that accounts stored before
// password_changed_at existed count their password as set at creation.
func TestUserStore_MigratePasswordChangedAt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pentecost.db")
	clock := storetest.NewClock()
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

// TestUserStore_MigrateRole checks that accounts stored before roles
// existed become speakers, except the oldest, which becomes the admin (on
// an install that began with serve, the account made at first start).
func TestUserStore_MigrateRole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pentecost.db")
	clock := storetest.NewClock()
	db := MustOpenDBAt(t, path, clock)
	users := sqlite.NewUserStore(db)
	// Created in this order, so that the oldest is not first by name.
	for _, name := range []string{"pastor", "admin", "guest"} {
		MustCreateUser(t, users, name, "h")
		clock.Add(time.Minute)
	}

	// Take the database back to before the migration.
	for _, q := range []string{
		`ALTER TABLE users DROP COLUMN role`,
		`DELETE FROM migrations WHERE name LIKE '%user_role%'`,
	} {
		if _, err := sqlite.SQLDB(db).Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	MustCloseDB(t, db)

	db = MustOpenDBAt(t, path, clock)
	all, err := sqlite.NewUserStore(db).FindUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]pentecost.Role{}
	for _, u := range all {
		got[u.Name] = u.Role
	}
	want := map[string]pentecost.Role{"pastor": pentecost.RoleAdmin, "admin": pentecost.RoleSpeaker, "guest": pentecost.RoleSpeaker}
	if len(got) != len(want) {
		t.Fatalf("roles = %v, want %v", got, want)
	}
	for name, role := range want {
		if got[name] != role {
			t.Fatalf("roles = %v, want %v", got, want)
		}
	}
	// The migration's admin is protected like any other last admin.
	err = sqlite.NewUserStore(db).DeleteUser(context.Background(), "pastor")
	if pentecost.ErrorCode(err) != pentecost.ECONFLICT {
		t.Fatalf("removing the only admin: %v, want %s", err, pentecost.ECONFLICT)
	}
}

// TestUserStore_RoleCheck checks that the table itself refuses a role
// that is not one, whatever code writes it.
func TestUserStore_RoleCheck(t *testing.T) {
	db := MustOpenDBAt(t, filepath.Join(t.TempDir(), "pentecost.db"), storetest.NewClock())
	MustCreateUser(t, sqlite.NewUserStore(db), "alice", "h")
	if _, err := sqlite.SQLDB(db).Exec(`UPDATE users SET role = 'root' WHERE name = 'alice'`); err == nil {
		t.Fatal("the table took role 'root'")
	}
}
