package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sessionid"
)

// Defaults for the SessionService's configuration fields.
const (
	DefaultMaxIdle       = 4 * time.Hour
	DefaultRetention     = 24 * time.Hour
	DefaultMaxIDAttempts = 10
)

// Limits of FindSessions pages.
const (
	DefaultSessionLimit = 100
	MaxSessionLimit     = 1000
)

// MaxSpeakerStateLen bounds the free text of BroadcastState.SpeakerState, in bytes.
const MaxSpeakerStateLen = pentecost.MaxSpeakerStateLen

// SessionService keeps sessions in the database. A live session whose
// ExpiresAt has passed is reported as ended, with EndedAt = ExpiresAt, even
// before ExpireSessions has marked it so; ExpireSessions later stores
// exactly that.
type SessionService struct {
	db *DB

	// MaxIdle is how long a session nobody speaks in stays open: ExpiresAt
	// is LastActiveAt + MaxIdle.
	MaxIdle time.Duration

	// Retention is how long an ended session stays findable before
	// PurgeSessions deletes it.
	Retention time.Duration

	// GenerateID returns a candidate ID for a new session.
	GenerateID func() string

	// MaxIDAttempts bounds the candidates tried before giving up with
	// ESESSIONIDEXHAUSTED; a candidate is taken if no session has it, live
	// or ended: an ID comes free only once PurgeSessions has deleted it.
	MaxIDAttempts int
}

// NewSessionService returns a SessionService on db with defaults set.
func NewSessionService(db *DB) *SessionService {
	return &SessionService{
		db:            db,
		MaxIdle:       DefaultMaxIdle,
		Retention:     DefaultRetention,
		GenerateID:    sessionid.NewGenerator().New,
		MaxIDAttempts: DefaultMaxIDAttempts,
	}
}

// sessionColumns is the column list every session query selects, in the
// order scanSession reads.
const sessionColumns = `id, owner_id, source_language, quality_tier, audio_format, status,
	paused, muted, volume, speaker_state, state_changed_at, listener_count,
	created_at, last_active_at, expires_at, ended_at`

// CreateSession creates a session owned by the user in ctx. Only
// SourceLanguage, QualityTier and AudioFormat are read from s; everything
// else is filled in.
func (s *SessionService) CreateSession(ctx context.Context, sess *pentecost.Session) error {
	user := pentecost.UserFromContext(ctx)
	if user == nil || user.ID == "" {
		return pentecost.Errorf(pentecost.EAUTHREQUIRED, "Sign in to create a session.")
	}
	var created *pentecost.Session
	err := s.db.update(ctx, "create session", func(tx *Tx) error {
		c, err := pentecost.NewSession(sess, user.ID, tx.now, s.MaxIdle)
		if err != nil {
			return err
		}
		if c.ID, err = s.allocateID(ctx, tx); err != nil {
			return err
		}
		if err := insertSession(ctx, tx, c); err != nil {
			return err
		}
		created = c
		return nil
	})
	if err != nil {
		return err
	}
	*sess = *created
	return nil
}

// allocateID draws candidate IDs until one has no row at all. An ended or
// expired session keeps its ID until purged, so that whoever looks it up
// within the retention period finds that session, never a stranger's new one.
func (s *SessionService) allocateID(ctx context.Context, tx *Tx) (string, error) {
	for range s.MaxIDAttempts {
		id, err := sessionid.Normalize(s.GenerateID())
		if err != nil {
			return "", fmt.Errorf("generated session ID is malformed: %w", err)
		}
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM sessions WHERE id = ?`, id).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return id, nil
		case err != nil:
			return "", err
		}
	}
	return "", pentecost.Errorf(pentecost.ESESSIONIDEXHAUSTED, "Could not allocate a session ID, try again.")
}

// FindSessionByID finds a session by an ID as a person typed it.
func (s *SessionService) FindSessionByID(ctx context.Context, id string) (*pentecost.Session, error) {
	id, err := sessionid.Normalize(id)
	if err != nil {
		return nil, err
	}
	var sess *pentecost.Session
	err = s.db.view(ctx, "find session", func(tx *Tx) (err error) {
		sess, err = findSession(ctx, tx, id)
		return err
	})
	return sess, err
}

// FindSessions returns a page of sessions matching filter, newest first,
// and how many match in all. Limit defaults to DefaultSessionLimit and is
// capped at MaxSessionLimit; an unknown status matches nothing.
func (s *SessionService) FindSessions(ctx context.Context, filter pentecost.SessionFilter) ([]*pentecost.Session, int, error) {
	limit := filter.Limit
	if limit <= 0 {
		limit = DefaultSessionLimit
	}
	limit = min(limit, MaxSessionLimit)
	offset := max(filter.Offset, 0)

	sessions := []*pentecost.Session{}
	var total int
	err := s.db.view(ctx, "find sessions", func(tx *Tx) error {
		where, args := []string{"1 = 1"}, []any{}
		if filter.OwnerID != nil {
			where, args = append(where, "owner_id = ?"), append(args, *filter.OwnerID)
		}
		if filter.Status != nil {
			// Match the status as reported, in which expired means ended.
			switch st := *filter.Status; st {
			case pentecost.SessionActive, pentecost.SessionPaused:
				where, args = append(where, "status = ? AND expires_at > ?"), append(args, string(st), tx.now.UnixMilli())
			case pentecost.SessionEnded:
				where, args = append(where, "(status = 'ended' OR expires_at <= ?)"), append(args, tx.now.UnixMilli())
			default:
				where = append(where, "0")
			}
		}
		cond := strings.Join(where, " AND ")

		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sessions WHERE `+cond, args...).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE `+cond+
			` ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?`, append(args, limit, offset)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		sessions = sessions[:0] // a retried transaction starts over
		for rows.Next() {
			sess, err := scanSession(rows, tx.now)
			if err != nil {
				return err
			}
			sessions = append(sessions, sess)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, err
	}
	return sessions, total, nil
}

// UpdateSession applies upd to a session owned by the user in ctx. The
// owner's update counts as use, so it also postpones the idle expiry.
func (s *SessionService) UpdateSession(ctx context.Context, id string, upd pentecost.SessionUpdate) (*pentecost.Session, error) {
	user := pentecost.UserFromContext(ctx)
	if user == nil {
		return nil, pentecost.Errorf(pentecost.EAUTHREQUIRED, "Sign in to change a session.")
	}
	id, err := sessionid.Normalize(id)
	if err != nil {
		return nil, err
	}
	var sess *pentecost.Session
	err = s.db.update(ctx, "update session", func(tx *Tx) (err error) {
		if sess, err = findOwnedLiveSession(ctx, tx, id, user); err != nil {
			return err
		}
		end, err := sess.Apply(upd, tx.now)
		if err != nil {
			return err
		}
		sess.Touch(tx.now, s.MaxIdle)
		if end {
			sess.End(tx.now)
		}
		return writeSession(ctx, tx, sess)
	})
	if err != nil {
		return nil, err
	}
	return sess, nil
}

// EndSession ends a session owned by the user in ctx at once.
func (s *SessionService) EndSession(ctx context.Context, id string) (*pentecost.Session, error) {
	user := pentecost.UserFromContext(ctx)
	if user == nil {
		return nil, pentecost.Errorf(pentecost.EAUTHREQUIRED, "Sign in to end a session.")
	}
	id, err := sessionid.Normalize(id)
	if err != nil {
		return nil, err
	}
	var sess *pentecost.Session
	err = s.db.update(ctx, "end session", func(tx *Tx) (err error) {
		if sess, err = findOwnedLiveSession(ctx, tx, id, user); err != nil {
			return err
		}
		sess.End(tx.now)
		return writeSession(ctx, tx, sess)
	})
	if err != nil {
		return nil, err
	}
	return sess, nil
}

// TouchSession moves a live session's idle expiry forward from now.
// An ID that is not well formed cannot exist, so it is ESESSIONNOTFOUND.
func (s *SessionService) TouchSession(ctx context.Context, id string) error {
	id, err := sessionid.Normalize(id)
	if err != nil {
		return notFound()
	}
	return s.db.update(ctx, "touch session", func(tx *Tx) error {
		now := tx.now.UnixMilli()
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET last_active_at = ?, expires_at = ?
			WHERE id = ? AND status <> 'ended' AND expires_at > ?`, now, tx.now.Add(s.MaxIdle).UnixMilli(), id, now)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		if _, err := findSession(ctx, tx, id); err != nil {
			return err
		}
		return ended()
	})
}

// SetListenerCount records how many listeners a live session has. Counts
// reported for an ended session are ignored: it keeps 0.
func (s *SessionService) SetListenerCount(ctx context.Context, id string, n int) error {
	if n < 0 {
		return fieldError("listenerCount", "Listener count cannot be negative.")
	}
	id, err := sessionid.Normalize(id)
	if err != nil {
		return notFound()
	}
	return s.db.update(ctx, "set listener count", func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET listener_count = ?
			WHERE id = ? AND status <> 'ended' AND expires_at > ?`, n, id, tx.now.UnixMilli())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		_, err = findSession(ctx, tx, id)
		return err
	})
}

// ExpireSessions ends every live session whose ExpiresAt has come, with
// EndedAt = ExpiresAt, and returns them.
func (s *SessionService) ExpireSessions(ctx context.Context) ([]*pentecost.Session, error) {
	expired := []*pentecost.Session{}
	err := s.db.update(ctx, "expire sessions", func(tx *Tx) error {
		now := tx.now.UnixMilli()
		rows, err := tx.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions
			WHERE status <> 'ended' AND expires_at <= ? ORDER BY expires_at, id`, now)
		if err != nil {
			return err
		}
		defer rows.Close()
		expired = expired[:0] // a retried transaction starts over
		for rows.Next() {
			sess, err := scanSession(rows, tx.now) // reports it ended
			if err != nil {
				return err
			}
			expired = append(expired, sess)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE sessions SET status = 'ended', ended_at = expires_at, listener_count = 0
			WHERE status <> 'ended' AND expires_at <= ?`, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return expired, nil
}

// PurgeSessions deletes sessions that ended at least Retention ago,
// counting an expired session as ended at its ExpiresAt.
func (s *SessionService) PurgeSessions(ctx context.Context) (int, error) {
	var n int64
	err := s.db.update(ctx, "purge sessions", func(tx *Tx) error {
		cutoff := tx.now.Add(-s.Retention).UnixMilli()
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions
			WHERE (status = 'ended' AND ended_at <= ?) OR (status <> 'ended' AND expires_at <= ?)`, cutoff, cutoff)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// findSession returns the session with a normalized id, as reported at tx.now.
func findSession(ctx context.Context, tx *Tx, id string) (*pentecost.Session, error) {
	sess, err := scanSession(tx.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id), tx.now)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	}
	return sess, err
}

// findOwnedLiveSession returns a session that user owns and that has not ended.
func findOwnedLiveSession(ctx context.Context, tx *Tx, id string, user *pentecost.User) (*pentecost.Session, error) {
	sess, err := findSession(ctx, tx, id)
	switch {
	case err != nil:
		return nil, err
	case sess.OwnerID != user.ID:
		return nil, pentecost.Errorf(pentecost.EFORBIDDEN, "Only the session's speaker may change it.")
	case sess.Status == pentecost.SessionEnded:
		return nil, ended()
	}
	return sess, nil
}

func notFound() error {
	return pentecost.Errorf(pentecost.ESESSIONNOTFOUND, "Session not found.")
}

func ended() error {
	return pentecost.Errorf(pentecost.ESESSIONENDED, "Session has ended.")
}

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface{ Scan(dest ...any) error }

// scanSession reads one row of sessionColumns. A live session past its
// expiry is reported ended at its ExpiresAt, as ExpireSessions would store.
func scanSession(row rowScanner, now time.Time) (*pentecost.Session, error) {
	var (
		sess                                               pentecost.Session
		stateChangedAt, createdAt, lastActiveAt, expiresAt int64
		endedAt                                            sql.NullInt64
	)
	err := row.Scan(&sess.ID, &sess.OwnerID, &sess.SourceLanguage, &sess.QualityTier, &sess.AudioFormat, &sess.Status,
		&sess.BroadcastState.Paused, &sess.BroadcastState.Muted, &sess.BroadcastState.Volume, &sess.BroadcastState.SpeakerState,
		&stateChangedAt, &sess.ListenerCount, &createdAt, &lastActiveAt, &expiresAt, &endedAt)
	if err != nil {
		return nil, err
	}
	sess.BroadcastState.ChangedAt = fromMillis(stateChangedAt)
	sess.CreatedAt, sess.LastActiveAt, sess.ExpiresAt = fromMillis(createdAt), fromMillis(lastActiveAt), fromMillis(expiresAt)
	if endedAt.Valid {
		sess.EndedAt = fromMillis(endedAt.Int64)
	}
	return sess.AsOf(now), nil
}

func insertSession(ctx context.Context, tx *Tx, s *pentecost.Session) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO sessions (`+sessionColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, sessionValues(s)...)
	return err
}

// writeSession stores every field of an existing session.
func writeSession(ctx context.Context, tx *Tx, s *pentecost.Session) error {
	_, err := tx.ExecContext(ctx, `UPDATE sessions SET owner_id = ?2, source_language = ?3, quality_tier = ?4,
		audio_format = ?5, status = ?6, paused = ?7, muted = ?8, volume = ?9, speaker_state = ?10,
		state_changed_at = ?11, listener_count = ?12, created_at = ?13, last_active_at = ?14,
		expires_at = ?15, ended_at = ?16 WHERE id = ?1`, sessionValues(s)...)
	return err
}

// sessionValues returns s's fields in sessionColumns order.
func sessionValues(s *pentecost.Session) []any {
	var endedAt sql.NullInt64
	if !s.EndedAt.IsZero() {
		endedAt = sql.NullInt64{Int64: s.EndedAt.UnixMilli(), Valid: true}
	}
	b := s.BroadcastState
	return []any{s.ID, s.OwnerID, s.SourceLanguage, string(s.QualityTier), s.AudioFormat, string(s.Status),
		b.Paused, b.Muted, b.Volume, b.SpeakerState, b.ChangedAt.UnixMilli(), s.ListenerCount,
		s.CreatedAt.UnixMilli(), s.LastActiveAt.UnixMilli(), s.ExpiresAt.UnixMilli(), endedAt}
}

var _ pentecost.SessionService = (*SessionService)(nil)
