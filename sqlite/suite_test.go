package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sqlite"
	"github.com/pentecost/pentecost/storetest"
)

func TestSessionServiceSuite(t *testing.T) {
	storetest.RunSessionServiceTests(t, func(t *testing.T, cfg storetest.SessionConfig) storetest.SessionSetup {
		clock := storetest.NewClock()
		path := filepath.Join(t.TempDir(), "pentecost.db")
		db := MustOpenDBAt(t, path, clock)
		configure := func(s *sqlite.SessionService) *sqlite.SessionService {
			s.MaxIdle, s.Retention, s.MaxIDAttempts, s.GenerateID = cfg.MaxIdle, cfg.Retention, cfg.MaxIDAttempts, cfg.GenerateID
			return s
		}
		return storetest.SessionSetup{
			Sessions: configure(sqlite.NewSessionService(db)),
			Clock:    clock,
			Reopen: func() pentecost.SessionService {
				db.Close()
				return configure(sqlite.NewSessionService(MustOpenDBAt(t, path, clock)))
			},
			Break: func() { db.Close() },
		}
	})
}

func TestUserStoreSuite(t *testing.T) {
	storetest.RunUserStoreTests(t, func(t *testing.T) storetest.UserSetup {
		clock := storetest.NewClock()
		db := MustOpenDBAt(t, filepath.Join(t.TempDir(), "pentecost.db"), clock)
		return storetest.UserSetup{Users: sqlite.NewUserStore(db), Clock: clock, Break: func() { db.Close() }}
	})
}
