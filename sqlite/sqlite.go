// Package sqlite is Pentecost's embedded store: sessions and speaker
// accounts in one SQLite file, through the pure-Go modernc.org/sqlite driver.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pentecost/pentecost"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migration/*.sql
var migrationFS embed.FS

// Log keys.
const (
	logKeyOp    = "op"
	logKeyError = "error"
)

// Defaults for the DB's configuration fields.
const (
	DefaultBusyTimeout   = 5 * time.Second
	DefaultMaxRetries    = 3
	DefaultRetryDelay    = 20 * time.Millisecond
	DefaultMaxRetryDelay = 500 * time.Millisecond
)

// memoryPath opens a private in-memory database, for quick experiments.
const memoryPath = ":memory:"

// DB is the SQLite database. Set its fields before Open.
type DB struct {
	db *sql.DB

	// Path is the database file; its directory is created if missing.
	Path string

	// Now returns the current time. Tests replace it to move the clock.
	Now func() time.Time

	// Logger receives the causes of store failures.
	Logger *slog.Logger

	// BusyTimeout is how long SQLite itself waits for a lock.
	BusyTimeout time.Duration

	// MaxRetries bounds how often an operation that found the store busy or
	// locked is run again; RetryDelay is the first pause, doubled after each
	// try up to MaxRetryDelay.
	MaxRetries    int
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration

	// onRetry, if set, is called before each retry with its number (tests).
	onRetry func(attempt int)
	// beforeCommit, if set, is called before each commit (tests).
	beforeCommit func()
}

// NewDB returns a DB for the file at path, with defaults set.
func NewDB(path string) *DB {
	return &DB{
		Path:          path,
		Now:           time.Now,
		Logger:        slog.New(slog.DiscardHandler),
		BusyTimeout:   DefaultBusyTimeout,
		MaxRetries:    DefaultMaxRetries,
		RetryDelay:    DefaultRetryDelay,
		MaxRetryDelay: DefaultMaxRetryDelay,
	}
}

// Open opens the database, creating the file and its directory if needed,
// and brings the schema up to date.
func (db *DB) Open() error {
	if db.Path == "" {
		return errors.New("sqlite: database path required")
	}
	if db.Now == nil { // a DB built without NewDB
		db.Now = time.Now
	}
	if db.Logger == nil {
		db.Logger = slog.New(slog.DiscardHandler)
	}
	if db.Path != memoryPath {
		if err := os.MkdirAll(filepath.Dir(db.Path), 0o700); err != nil {
			return fmt.Errorf("sqlite: create database directory: %w", err)
		}
	}

	// WAL lets readers run beside the one writer; synchronous=NORMAL is
	// safe against process crashes in WAL mode and keeps commits fast.
	// Immediate transactions take the write lock at BEGIN, so two writers
	// queue on busy_timeout instead of failing on a lock upgrade.
	dsn := fmt.Sprintf("%s?_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate",
		db.Path, db.BusyTimeout.Milliseconds())
	sqlDB, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("sqlite: open: %w", err)
	}
	if db.Path == memoryPath {
		sqlDB.SetMaxOpenConns(1) // each connection would get its own database
	}
	db.db = sqlDB

	if err := db.migrate(context.Background()); err != nil {
		db.db.Close()
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return nil
}

// Close closes the database. It is safe to call more than once.
func (db *DB) Close() error {
	if db.db == nil {
		return nil
	}
	return db.db.Close()
}

// Ping checks that the store answers a query, for readiness probes.
// Errors: EUNAVAILABLE.
func (db *DB) Ping(ctx context.Context) error {
	if db.db == nil {
		return db.storeError("ping", sql.ErrConnDone)
	}
	return db.view(ctx, "ping", func(tx *Tx) error {
		var one int
		return tx.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
	})
}

// migrate runs every embedded migration not yet recorded, in name order,
// each in its own transaction.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY) STRICT`); err != nil {
		return err
	}
	names, err := fs.Glob(migrationFS, "migration/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		err := db.update(ctx, "migrate", func(tx *Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM migrations WHERE name = ?`, name).Scan(&n); err != nil || n > 0 {
				return err
			}
			body, err := migrationFS.ReadFile(name)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO migrations (name) VALUES (?)`, name)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Tx is a transaction with the time it started, so that every row it
// writes carries the same timestamp.
type Tx struct {
	*sql.Tx
	now time.Time
}

// now returns the clock's time at the millisecond resolution we store, so
// that what a method returns equals what a later read returns.
func (db *DB) now() time.Time {
	return fromMillis(db.Now().UnixMilli())
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// update runs fn in a write transaction and commits it, retrying the whole
// transaction while the store is busy. fn may run more than once.
func (db *DB) update(ctx context.Context, op string, fn func(tx *Tx) error) error {
	return db.retry(ctx, op, func() error { return db.inTx(ctx, nil, fn) })
}

// view runs fn in a read-only transaction: one consistent snapshot that
// does not take the write lock.
func (db *DB) view(ctx context.Context, op string, fn func(tx *Tx) error) error {
	return db.retry(ctx, op, func() error { return db.inTx(ctx, &sql.TxOptions{ReadOnly: true}, fn) })
}

func (db *DB) inTx(ctx context.Context, opts *sql.TxOptions, fn func(tx *Tx) error) error {
	sqlTx, err := db.db.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	tx := &Tx{Tx: sqlTx, now: db.now()}
	if err := fn(tx); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if db.beforeCommit != nil {
		db.beforeCommit()
	}
	return sqlTx.Commit()
}

// retry runs fn until it succeeds, fails for a reason other than a busy or
// locked store, or has been retried MaxRetries times, pausing with a
// jittered exponential backoff in between. The error is then translated
// for users by storeError. A failure after ctx ended is reported as ctx's
// error as it is: the caller gave up (a client went away), which says
// nothing about the store.
func (db *DB) retry(ctx context.Context, op string, fn func() error) error {
	delay := db.RetryDelay
	for attempt := 1; ; attempt++ {
		err := fn()
		var appErr *pentecost.Error
		if err != nil && ctx.Err() != nil && !errors.As(err, &appErr) {
			// E.g. database/sql answers a commit after ctx ended with
			// ErrTxDone, which would otherwise read as an internal error.
			return ctx.Err()
		}
		if err == nil || !transient(err) || attempt > db.MaxRetries {
			return db.storeError(op, err)
		}
		if db.onRetry != nil {
			db.onRetry(attempt)
		}
		pause := delay/2 + rand.N(delay/2+1)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, db.MaxRetryDelay)
	}
}

// storeError passes application errors through and turns errors meaning
// the store cannot be used into EUNAVAILABLE, logging the cause, which
// users never see. Anything else is wrapped and stays internal.
func (db *DB) storeError(op string, err error) error {
	var e *pentecost.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case unavailable(err):
		db.Logger.Error("store unavailable", logKeyOp, op, logKeyError, err)
		return pentecost.Errorf(pentecost.EUNAVAILABLE, "Store unavailable.")
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// sqliteCode returns the primary SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff
	}
	return 0
}

// transient reports whether err may go away if the operation is run again.
func transient(err error) bool {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// unavailable reports whether err means the store cannot serve requests:
// still busy after retries, closed, or failing at the file level.
func unavailable(err error) bool {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_FULL, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_PERM, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOMEM:
		return true
	}
	// database/sql reports use after Close with an unexported error.
	return errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) ||
		strings.Contains(err.Error(), "sql: database is closed")
}

// constraint reports whether err is a constraint violation, such as a
// duplicate primary key.
func constraint(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT
}

// fieldError is EVALIDATIONFIELD naming the offending field.
func fieldError(field, msg string) error {
	return &pentecost.Error{Code: pentecost.EVALIDATIONFIELD, Message: msg, Details: map[string]string{"field": field}}
}
