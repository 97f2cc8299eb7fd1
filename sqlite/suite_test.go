package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sqlite"
	"github.com/pentecost/pentecost/storetest"
)

// openSuiteDB opens a database in a fresh file on clock.
func openSuiteDB(tb testing.TB, path string, clock *storetest.Clock) *sqlite.DB {
	tb.Helper()
	db := sqlite.NewDB(path)
	db.Now = clock.Now
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestSessionServiceSuite(t *testing.T) {
	storetest.RunSessionServiceTests(t, func(t *testing.T, cfg storetest.SessionConfig) storetest.SessionSetup {
		clock := storetest.NewClock()
		path := filepath.Join(t.TempDir(), "pentecost.db")
		db := openSuiteDB(t, path, clock)
		configure := func(s *sqlite.SessionService) *sqlite.SessionService {
			s.MaxIdle, s.Retention, s.MaxIDAttempts, s.GenerateID = cfg.MaxIdle, cfg.Retention, cfg.MaxIDAttempts, cfg.GenerateID
			return s
		}
		return storetest.SessionSetup{
			Sessions: configure(sqlite.NewSessionService(db)),
			Clock:    clock,
			Reopen: func() pentecost.SessionService {
				db.Close()
				return configure(sqlite.NewSessionService(openSuiteDB(t, path, clock)))
			},
			Break: func() { db.Close() },
		}
	})
}

func TestUserStoreSuite(t *testing.T) {
	storetest.RunUserStoreTests(t, func(t *testing.T) storetest.UserSetup {
		clock := storetest.NewClock()
		db := openSuiteDB(t, filepath.Join(t.TempDir(), "pentecost.db"), clock)
		return storetest.UserSetup{Users: sqlite.NewUserStore(db), Clock: clock, Break: func() { db.Close() }}
	})
}
