package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sqlite"
	"github.com/pentecost/pentecost/storetest"
)

// MustOpenDB opens a database in a fresh file under tb.TempDir() with a
// settable clock, and closes it when the test ends.
func MustOpenDB(tb testing.TB) (*sqlite.DB, *storetest.Clock) {
	tb.Helper()
	clock := storetest.NewClock()
	return MustOpenDBAt(tb, filepath.Join(tb.TempDir(), "data", "pentecost.db"), clock), clock
}

// MustOpenDBAt opens the database file at path with the given clock.
func MustOpenDBAt(tb testing.TB, path string, clock *storetest.Clock) *sqlite.DB {
	tb.Helper()
	db := sqlite.NewDB(path)
	db.Now = clock.Now
	if err := db.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// MustCloseDB closes db or fails the test.
func MustCloseDB(tb testing.TB, db *sqlite.DB) {
	tb.Helper()
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
}

// wantCode fails the test unless err carries code.
func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := pentecost.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

// syncBuffer is a log sink safe for the goroutines a DB may log from.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDB_Open(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		if _, err := os.Stat(db.Path); err != nil {
			t.Fatalf("database file: %v", err)
		}
		conn := sqlite.SQLDB(db)
		var mode string
		var fk int
		if err := conn.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		} else if mode != "wal" {
			t.Fatalf("journal_mode = %q, want wal", mode)
		}
		if err := conn.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil {
			t.Fatal(err)
		} else if fk != 1 {
			t.Fatalf("foreign_keys = %d, want 1", fk)
		}
	})

	t.Run("MigrationsRunOnce", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "pentecost.db")
		clock := storetest.NewClock()
		countMigrations := func(db *sqlite.DB) int {
			var n int
			if err := sqlite.SQLDB(db).QueryRow(`SELECT COUNT(*) FROM migrations`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		db := MustOpenDBAt(t, path, clock)
		first := countMigrations(db)
		if first == 0 {
			t.Fatal("no migration recorded")
		}
		MustCloseDB(t, db)
		db = MustOpenDBAt(t, path, clock) // would fail on CREATE TABLE if rerun
		if n := countMigrations(db); n != first {
			t.Fatalf("%d migrations recorded after reopening, want %d", n, first)
		}
	})

	t.Run("ErrPathRequired", func(t *testing.T) {
		if err := sqlite.NewDB("").Open(); err == nil {
			t.Fatal("expected error")
		}
	})
}

func TestDB_Ping(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		if err := db.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrUnavailable", func(t *testing.T) {
		db, _ := MustOpenDB(t)
		logs := &syncBuffer{}
		db.Logger = slog.New(slog.NewTextHandler(logs, nil))
		MustCloseDB(t, db)
		err := db.Ping(context.Background())
		wantCode(t, err, pentecost.EUNAVAILABLE)
		if msg := pentecost.ErrorMessage(err); msg != "Store unavailable." {
			t.Fatalf("message = %q", msg)
		}
		if !strings.Contains(logs.String(), "level=ERROR") {
			t.Fatalf("cause not logged at error level: %q", logs.String())
		}
	})

	t.Run("ErrUnavailableNeverOpened", func(t *testing.T) {
		wantCode(t, sqlite.NewDB(filepath.Join(t.TempDir(), "x.db")).Ping(context.Background()), pentecost.EUNAVAILABLE)
	})
}

// lockDB takes the write lock of the database file at path from a separate
// connection, as another process would, and returns a function releasing it.
func lockDB(t *testing.T, path string) (release func()) {
	t.Helper()
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(context.Background(), `ROLLBACK`); err != nil {
				t.Error(err)
			}
			conn.Close()
		})
	}
	t.Cleanup(release)
	return release
}

func TestDB_Retry(t *testing.T) {
	// A tiny busy timeout makes SQLite give up at once, so the retries are
	// what is tested.
	openBusyDB := func(t *testing.T) *sqlite.DB {
		db, _ := MustOpenDB(t)
		MustCloseDB(t, db)
		db.BusyTimeout = time.Millisecond
		db.RetryDelay = time.Millisecond
		db.MaxRetryDelay = 4 * time.Millisecond
		if err := db.Open(); err != nil {
			t.Fatal(err)
		}
		return db
	}

	t.Run("OK", func(t *testing.T) {
		db := openBusyDB(t)
		release := lockDB(t, db.Path)
		var retries []int
		sqlite.SetRetryHook(db, func(attempt int) {
			retries = append(retries, attempt)
			release() // the other writer finishes while we back off
		})
		users := sqlite.NewUserStore(db)
		if err := users.CreateUser(context.Background(), &pentecost.User{Name: "alice", PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
		if len(retries) != 1 {
			t.Fatalf("retries = %v, want exactly one", retries)
		}
		if _, err := users.FindUserByName(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrUnavailable", func(t *testing.T) {
		db := openBusyDB(t)
		db.MaxRetries = 2
		logs := &syncBuffer{}
		db.Logger = slog.New(slog.NewTextHandler(logs, nil))
		lockDB(t, db.Path)
		var retries int
		sqlite.SetRetryHook(db, func(int) { retries++ })
		err := sqlite.NewUserStore(db).CreateUser(context.Background(), &pentecost.User{Name: "alice", PasswordHash: "h"})
		wantCode(t, err, pentecost.EUNAVAILABLE)
		if retries != db.MaxRetries {
			t.Fatalf("retries = %d, want %d", retries, db.MaxRetries)
		}
		if !strings.Contains(logs.String(), "level=ERROR") {
			t.Fatalf("cause not logged at error level: %q", logs.String())
		}
	})
}

// TestDB_ContextCancelled checks that a call whose context ends returns the
// context's error as it is: the caller gave up, the store is fine, so
// nothing is wrapped, turned into EUNAVAILABLE or logged as a failure.
func TestDB_ContextCancelled(t *testing.T) {
	for _, tt := range []struct {
		name string
		// cancelAt cancels ctx before the call or sets a hook that does.
		cancelAt func(t *testing.T, db *sqlite.DB, cancel context.CancelFunc)
	}{
		{"Before", func(t *testing.T, db *sqlite.DB, cancel context.CancelFunc) { cancel() }},
		// Once database/sql has rolled the transaction back for the ended
		// context, it answers the commit with ErrTxDone.
		{"AtCommit", func(t *testing.T, db *sqlite.DB, cancel context.CancelFunc) {
			sqlite.SetCommitHook(db, func() {
				cancel()
				waitWriteLockFree(t, db.Path)
			})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := MustOpenDB(t)
			logs := &syncBuffer{}
			db.Logger = slog.New(slog.NewTextHandler(logs, nil))
			s := sqlite.NewSessionService(db)
			ctx, cancel := context.WithCancel(as("alice"))
			defer cancel()
			tt.cancelAt(t, db, cancel)

			err := s.CreateSession(ctx, &pentecost.Session{SourceLanguage: "en"})
			if err != context.Canceled {
				t.Fatalf("err = %v (%T), want context.Canceled itself", err, err)
			}
			if logs.String() != "" {
				t.Fatalf("logged: %q", logs.String())
			}
			sqlite.SetCommitHook(db, nil)
			if _, n, err := s.FindSessions(context.Background(), pentecost.SessionFilter{}); err != nil || n != 0 {
				t.Fatalf("FindSessions = %d, %v; want nothing stored", n, err)
			}
		})
	}
}

// waitWriteLockFree polls, from a separate connection, until the write lock
// of the database at path can be taken, and lets it go again.
func waitWriteLockFree(t *testing.T, path string) {
	t.Helper()
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := other.Exec(`BEGIN IMMEDIATE; ROLLBACK`); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the write lock was never released")
		}
		time.Sleep(time.Millisecond)
	}
}
