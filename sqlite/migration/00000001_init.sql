-- Sessions: one row per session ID. An ID is reused only after its row is
-- purged. Times are Unix milliseconds. Nothing about audio or transcripts
-- is stored.
CREATE TABLE sessions (
	id               TEXT    PRIMARY KEY,
	owner_id         TEXT    NOT NULL,
	source_language  TEXT    NOT NULL,
	quality_tier     TEXT    NOT NULL,
	audio_format     TEXT    NOT NULL,
	status           TEXT    NOT NULL CHECK (status IN ('active', 'paused', 'ended')),
	paused           INTEGER NOT NULL CHECK (paused IN (0, 1)),
	muted            INTEGER NOT NULL CHECK (muted IN (0, 1)),
	volume           REAL    NOT NULL CHECK (volume BETWEEN 0.0 AND 1.0),
	speaker_state    TEXT    NOT NULL,
	state_changed_at INTEGER NOT NULL,
	listener_count   INTEGER NOT NULL CHECK (listener_count >= 0),
	created_at       INTEGER NOT NULL,
	last_active_at   INTEGER NOT NULL,
	expires_at       INTEGER NOT NULL,
	ended_at         INTEGER
) STRICT;

-- Listing newest first, overall and per owner.
CREATE INDEX sessions_created_at_idx ON sessions (created_at);
CREATE INDEX sessions_owner_id_idx ON sessions (owner_id, created_at);

-- The sweeps: live sessions by expiry, ended ones by end time.
CREATE INDEX sessions_live_expires_at_idx ON sessions (expires_at) WHERE status <> 'ended';
CREATE INDEX sessions_ended_at_idx ON sessions (ended_at) WHERE status = 'ended';

-- Embedded speaker accounts. Names are case-sensitive.
CREATE TABLE users (
	name          TEXT    PRIMARY KEY,
	password_hash TEXT    NOT NULL,
	created_at    INTEGER NOT NULL
) STRICT;
