package sqlite

import "database/sql"

// SetRetryHook makes db call fn before each retry of a busy operation.
func SetRetryHook(db *DB, fn func(attempt int)) { db.onRetry = fn }

// SQLDB returns the underlying handle, to inspect pragmas and tables.
func SQLDB(db *DB) *sql.DB { return db.db }

// SetCommitHook makes db call fn before each commit.
func SetCommitHook(db *DB, fn func()) { db.beforeCommit = fn }
