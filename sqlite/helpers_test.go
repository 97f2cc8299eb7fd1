package sqlite_test

import (
	"context"
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sqlite"
)

// The behaviour shared with the Redis store is tested once for both, in
// storetest (suite_test.go). What is left here is SQLite's own: the
// database file, migrations, retries and benchmarks.

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
