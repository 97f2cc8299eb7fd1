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
