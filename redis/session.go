package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sessionid"
	goredis "github.com/redis/go-redis/v9"
)

// Defaults for the SessionService's configuration fields, as in sqlite.
const (
	DefaultMaxIdle       = 4 * time.Hour
	DefaultRetention     = 24 * time.Hour
	DefaultMaxIDAttempts = 10
)

// Limits of FindSessions pages, as in sqlite.
const (
	DefaultSessionLimit = 100
	MaxSessionLimit     = 1000
)

// maxTxAttempts bounds the optimistic transactions retried after another
// node changed the same session in between.
const maxTxAttempts = 20

// SessionService keeps sessions in Redis with exactly the semantics of the
// sqlite store: a live session whose ExpiresAt has passed is reported
// ended, with EndedAt = ExpiresAt, even before ExpireSessions stores it so.
//
// Every session key shares the hash tag {sessions}: session metadata is
// small and written seldom (creation, controls, a throttled touch), and one
// slot lets each change update the session and its indexes atomically.
type SessionService struct {
	db *DB

	// MaxIdle is how long a session nobody speaks in stays open.
	MaxIdle time.Duration
	// Retention is how long an ended session stays findable.
	Retention time.Duration
	// GenerateID returns a candidate ID for a new session.
	GenerateID func() string
	// MaxIDAttempts bounds the candidates tried before ESESSIONIDEXHAUSTED;
	// a candidate is taken if any session has it, live or ended: an ID
	// comes free only once PurgeSessions has deleted it.
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

// Keys, all in the {sessions} slot.
func (s *SessionService) key(id string) string { return s.db.Prefix + "{sessions}:session:" + id }
func (s *SessionService) allKey() string       { return s.db.Prefix + "{sessions}:all" }
func (s *SessionService) seqKey() string       { return s.db.Prefix + "{sessions}:seq" }
func (s *SessionService) liveKey() string      { return s.db.Prefix + "{sessions}:live" }
func (s *SessionService) endedKey() string     { return s.db.Prefix + "{sessions}:ended" }
func (s *SessionService) createdKey(id string) string {
	return s.db.Prefix + "{sessions}:created:" + id
}
func (s *SessionService) ownerKey(owner string) string {
	return s.db.Prefix + "{sessions}:owner:" + owner
}

// createScript stores a new session unless its ID is taken, and indexes
// it: by creation order (all, owner) and by expiry (live). KEYS[6] keeps
// the creation's token (ARGV[4]) for ARGV[5] ms: go-redis sends a script
// again when its reply was lost, and that retry must find the session its
// own, not a taken ID that would make CreateSession store a second one.
var createScript = goredis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('GET', KEYS[6]) == ARGV[4] then return 1 end
  return 0
end
redis.call('SET', KEYS[1], ARGV[1])
local n = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], n, ARGV[2])
redis.call('ZADD', KEYS[4], n, ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[2])
redis.call('SET', KEYS[6], ARGV[4], 'PX', ARGV[5])
return 1`)

// createTokenTTL outlasts go-redis's retries of a creation.
const createTokenTTL = time.Minute

// CreateSession creates a session owned by the user in ctx. Only
// SourceLanguage, QualityTier and AudioFormat are read from sess.
func (s *SessionService) CreateSession(ctx context.Context, sess *pentecost.Session) error {
	user := pentecost.UserFromContext(ctx)
	if user == nil || user.ID == "" {
		return pentecost.Errorf(pentecost.EAUTHREQUIRED, "Sign in to create a session.")
	}
	now := s.db.nowMillis()
	created, err := pentecost.NewSession(sess, user.ID, now, s.MaxIdle)
	if err != nil {
		return err
	}
	for range s.MaxIDAttempts {
		id, err := sessionid.Normalize(s.GenerateID())
		if err != nil {
			return fmt.Errorf("redis: generated session ID is malformed: %w", err)
		}
		created.ID = id
		data, err := encodeSession(created)
		if err != nil {
			return err
		}
		keys := []string{s.key(id), s.allKey(), s.seqKey(), s.ownerKey(user.ID), s.liveKey(), s.createdKey(id)}
		ok, err := createScript.Run(ctx, s.db.client, keys, data, id, created.ExpiresAt.UnixMilli(),
			newEpoch()+newEpoch(), createTokenTTL.Milliseconds()).Int()
		if err != nil {
			return s.db.storeError(ctx, "create session", err)
		}
		if ok == 1 {
			*sess = *created
			return nil
		}
	}
	return pentecost.Errorf(pentecost.ESESSIONIDEXHAUSTED, "Could not allocate a session ID, try again.")
}

// FindSessionByID finds a session by an ID as a person typed it.
func (s *SessionService) FindSessionByID(ctx context.Context, id string) (*pentecost.Session, error) {
	id, err := sessionid.Normalize(id)
	if err != nil {
		return nil, err
	}
	data, err := s.db.client.Get(ctx, s.key(id)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, notFound()
	} else if err != nil {
		return nil, s.db.storeError(ctx, "find session", err)
	}
	sess, err := decodeSession(data)
	if err != nil {
		return nil, err
	}
	return sess.AsOf(s.db.nowMillis()), nil
}

// FindSessions returns a page of sessions matching filter, newest first,
// and how many match in all. Limit defaults to DefaultSessionLimit and is
// capped at MaxSessionLimit; an unknown status matches nothing. Filtering
// by status reads every session of the index (all, or the owner's).
func (s *SessionService) FindSessions(ctx context.Context, filter pentecost.SessionFilter) ([]*pentecost.Session, int, error) {
	limit := filter.Limit
	if limit <= 0 {
		limit = DefaultSessionLimit
	}
	limit = min(limit, MaxSessionLimit)
	offset := max(filter.Offset, 0)
	index := s.allKey()
	if filter.OwnerID != nil {
		index = s.ownerKey(*filter.OwnerID)
	}
	now := s.db.nowMillis()
	sessions := []*pentecost.Session{}

	if filter.Status == nil {
		total, err := s.db.client.ZCard(ctx, index).Result()
		if err != nil {
			return nil, 0, s.db.storeError(ctx, "find sessions", err)
		}
		ids, err := s.db.client.ZRevRange(ctx, index, int64(offset), int64(offset+limit-1)).Result()
		if err != nil {
			return nil, 0, s.db.storeError(ctx, "find sessions", err)
		}
		page, err := s.load(ctx, ids, now)
		if err != nil {
			return nil, 0, err
		}
		return append(sessions, page...), int(total), nil
	}

	st := *filter.Status
	if !st.Valid() {
		return sessions, 0, nil
	}
	ids, err := s.db.client.ZRevRange(ctx, index, 0, -1).Result()
	if err != nil {
		return nil, 0, s.db.storeError(ctx, "find sessions", err)
	}
	var matched []*pentecost.Session
	for len(ids) > 0 {
		n := min(len(ids), 500)
		batch, err := s.load(ctx, ids[:n], now)
		if err != nil {
			return nil, 0, err
		}
		for _, sess := range batch {
			if sess.Status == st {
				matched = append(matched, sess)
			}
		}
		ids = ids[n:]
	}
	if offset < len(matched) {
		sessions = append(sessions, matched[offset:min(len(matched), offset+limit)]...)
	}
	return sessions, len(matched), nil
}

// load reads sessions by ID as of now, skipping any deleted meanwhile.
func (s *SessionService) load(ctx context.Context, ids []string, now time.Time) ([]*pentecost.Session, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.key(id)
	}
	vals, err := s.db.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, s.db.storeError(ctx, "load sessions", err)
	}
	out := make([]*pentecost.Session, 0, len(vals))
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		sess, err := decodeSession([]byte(str))
		if err != nil {
			return nil, err
		}
		out = append(out, sess.AsOf(now))
	}
	return out, nil
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
	return s.modify(ctx, "update session", id, func(sess *pentecost.Session, now time.Time) (bool, error) {
		if err := ownedLive(sess, user, now); err != nil {
			return false, err
		}
		end, err := sess.Apply(upd, now)
		if err != nil {
			return false, err
		}
		sess.Touch(now, s.MaxIdle)
		if end {
			sess.End(now)
		}
		return true, nil
	})
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
	return s.modify(ctx, "end session", id, func(sess *pentecost.Session, now time.Time) (bool, error) {
		if err := ownedLive(sess, user, now); err != nil {
			return false, err
		}
		sess.End(now)
		return true, nil
	})
}

// ownedLive checks that user owns sess and that it has not ended by now.
func ownedLive(sess *pentecost.Session, user *pentecost.User, now time.Time) error {
	switch {
	case sess.OwnerID != user.ID:
		return pentecost.Errorf(pentecost.EFORBIDDEN, "Only the session's speaker may change it.")
	case sess.AsOf(now).Status == pentecost.SessionEnded:
		return ended()
	}
	return nil
}

// TouchSession moves a live session's idle expiry forward from now.
// An ID that is not well formed cannot exist, so it is ESESSIONNOTFOUND.
func (s *SessionService) TouchSession(ctx context.Context, id string) error {
	id, err := sessionid.Normalize(id)
	if err != nil {
		return notFound()
	}
	_, err = s.modify(ctx, "touch session", id, func(sess *pentecost.Session, now time.Time) (bool, error) {
		if sess.AsOf(now).Status == pentecost.SessionEnded {
			return false, ended()
		}
		sess.Touch(now, s.MaxIdle)
		return true, nil
	})
	return err
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
	_, err = s.modify(ctx, "set listener count", id, func(sess *pentecost.Session, now time.Time) (bool, error) {
		if sess.AsOf(now).Status == pentecost.SessionEnded || sess.ListenerCount == n {
			return false, nil
		}
		sess.ListenerCount = n
		return true, nil
	})
	return err
}

// ExpireSessions ends every live session whose ExpiresAt has come, with
// EndedAt = ExpiresAt, and returns them ordered by expiry.
func (s *SessionService) ExpireSessions(ctx context.Context) ([]*pentecost.Session, error) {
	now := s.db.nowMillis()
	ids, err := s.db.client.ZRangeByScore(ctx, s.liveKey(), &goredis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10)}).Result()
	if err != nil {
		return nil, s.db.storeError(ctx, "expire sessions", err)
	}
	expired := []*pentecost.Session{}
	for _, id := range ids {
		var swept bool
		sess, err := s.modifyAt(ctx, "expire sessions", id, now, func(sess *pentecost.Session, now time.Time) (bool, error) {
			swept = sess.Status != pentecost.SessionEnded && !now.Before(sess.ExpiresAt)
			sess.AsOf(now)
			return swept, nil
		})
		switch {
		case pentecost.ErrorCode(err) == pentecost.ESESSIONNOTFOUND: // purged meanwhile
		case err != nil:
			return nil, err
		case swept:
			expired = append(expired, sess)
		}
	}
	sort.Slice(expired, func(i, j int) bool {
		a, b := expired[i], expired[j]
		if !a.ExpiresAt.Equal(b.ExpiresAt) {
			return a.ExpiresAt.Before(b.ExpiresAt)
		}
		return a.ID < b.ID
	})
	return expired, nil
}

// PurgeSessions deletes sessions that ended at least Retention ago,
// counting an expired session as ended at its ExpiresAt.
func (s *SessionService) PurgeSessions(ctx context.Context) (int, error) {
	cutoff := s.db.nowMillis().Add(-s.Retention)
	by := &goredis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(cutoff.UnixMilli(), 10)}
	endedIDs, err := s.db.client.ZRangeByScore(ctx, s.endedKey(), by).Result()
	if err != nil {
		return 0, s.db.storeError(ctx, "purge sessions", err)
	}
	expiredIDs, err := s.db.client.ZRangeByScore(ctx, s.liveKey(), by).Result()
	if err != nil {
		return 0, s.db.storeError(ctx, "purge sessions", err)
	}
	n := 0
	for _, id := range append(endedIDs, expiredIDs...) {
		purged, err := s.purge(ctx, id, cutoff)
		if err != nil {
			return n, err
		}
		if purged {
			n++
		}
	}
	return n, nil
}

// purge deletes one session and its index entries if it ended by cutoff.
func (s *SessionService) purge(ctx context.Context, id string, cutoff time.Time) (bool, error) {
	key := s.key(id)
	for range maxTxAttempts {
		var purged bool
		err := s.db.client.Watch(ctx, func(tx *goredis.Tx) error {
			purged = false
			sess, err := getSession(ctx, tx, key)
			if pentecost.ErrorCode(err) == pentecost.ESESSIONNOTFOUND {
				// A leftover index entry: drop it.
				_, err := tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
					p.ZRem(ctx, s.liveKey(), id)
					p.ZRem(ctx, s.endedKey(), id)
					return nil
				})
				return err
			} else if err != nil {
				return err
			}
			sess.AsOf(sess.ExpiresAt) // as ended, if it expired
			if sess.Status != pentecost.SessionEnded || sess.EndedAt.After(cutoff) {
				return nil
			}
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Del(ctx, key)
				p.ZRem(ctx, s.allKey(), id)
				p.ZRem(ctx, s.ownerKey(sess.OwnerID), id)
				p.ZRem(ctx, s.liveKey(), id)
				p.ZRem(ctx, s.endedKey(), id)
				return nil
			})
			purged = err == nil
			return err
		}, key)
		if errors.Is(err, goredis.TxFailedErr) {
			continue
		}
		return purged, s.db.storeError(ctx, "purge session", err)
	}
	return false, s.db.storeError(ctx, "purge session", errContention)
}

var errContention = errors.New("too much contention on one key")

// modify runs fn on a session as stored, at the clock's time, and stores
// the result when fn asks to, all in one optimistic transaction that is run
// again if the session changed in between.
func (s *SessionService) modify(ctx context.Context, op, id string, fn func(sess *pentecost.Session, now time.Time) (write bool, err error)) (*pentecost.Session, error) {
	return s.modifyAt(ctx, op, id, time.Time{}, fn)
}

// modifyAt is modify at a given time (zero: the clock's, read per attempt).
func (s *SessionService) modifyAt(ctx context.Context, op, id string, at time.Time, fn func(sess *pentecost.Session, now time.Time) (bool, error)) (*pentecost.Session, error) {
	key := s.key(id)
	for range maxTxAttempts {
		now := at
		if now.IsZero() {
			now = s.db.nowMillis()
		}
		var out *pentecost.Session
		err := s.db.client.Watch(ctx, func(tx *goredis.Tx) error {
			sess, err := getSession(ctx, tx, key)
			if err != nil {
				return err
			}
			write, err := fn(sess, now)
			if err != nil {
				return err
			}
			out = sess
			if !write {
				return nil
			}
			data, err := encodeSession(sess)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Set(ctx, key, data, 0)
				if sess.Status == pentecost.SessionEnded {
					p.ZRem(ctx, s.liveKey(), id)
					p.ZAdd(ctx, s.endedKey(), goredis.Z{Score: float64(sess.EndedAt.UnixMilli()), Member: id})
				} else {
					p.ZAdd(ctx, s.liveKey(), goredis.Z{Score: float64(sess.ExpiresAt.UnixMilli()), Member: id})
				}
				return nil
			})
			return err
		}, key)
		if errors.Is(err, goredis.TxFailedErr) {
			continue
		}
		if err != nil {
			return nil, s.db.storeError(ctx, op, err)
		}
		return out, nil
	}
	return nil, s.db.storeError(ctx, op, errContention)
}

// getSession reads a session inside a transaction.
func getSession(ctx context.Context, tx *goredis.Tx, key string) (*pentecost.Session, error) {
	data, err := tx.Get(ctx, key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, notFound()
	} else if err != nil {
		return nil, err
	}
	return decodeSession(data)
}

// sessionRecord is a session as stored: JSON with times in Unix milliseconds.
type sessionRecord struct {
	ID           string  `json:"id"`
	Owner        string  `json:"owner"`
	Language     string  `json:"lang"`
	Tier         string  `json:"tier"`
	Format       string  `json:"format"`
	Status       string  `json:"status"`
	Paused       bool    `json:"paused"`
	Muted        bool    `json:"muted"`
	Volume       float64 `json:"volume"`
	SpeakerState string  `json:"speakerState,omitempty"`
	StateChanged int64   `json:"stateChangedAt"`
	Listeners    int     `json:"listeners"`
	Created      int64   `json:"createdAt"`
	LastActive   int64   `json:"lastActiveAt"`
	Expires      int64   `json:"expiresAt"`
	Ended        int64   `json:"endedAt,omitempty"`
}

func encodeSession(s *pentecost.Session) ([]byte, error) {
	b := s.BroadcastState
	r := sessionRecord{
		ID: s.ID, Owner: s.OwnerID, Language: s.SourceLanguage, Tier: string(s.QualityTier), Format: s.AudioFormat,
		Status: string(s.Status), Paused: b.Paused, Muted: b.Muted, Volume: b.Volume, SpeakerState: b.SpeakerState,
		StateChanged: b.ChangedAt.UnixMilli(), Listeners: s.ListenerCount,
		Created: s.CreatedAt.UnixMilli(), LastActive: s.LastActiveAt.UnixMilli(), Expires: s.ExpiresAt.UnixMilli(),
		Ended: pentecost.UnixMilli(s.EndedAt),
	}
	return json.Marshal(r)
}

func decodeSession(data []byte) (*pentecost.Session, error) {
	var r sessionRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("redis: stored session is corrupt: %w", err)
	}
	s := &pentecost.Session{
		ID: r.ID, OwnerID: r.Owner, SourceLanguage: r.Language, QualityTier: pentecost.QualityTier(r.Tier),
		AudioFormat: r.Format, Status: pentecost.SessionStatus(r.Status),
		BroadcastState: pentecost.BroadcastState{Paused: r.Paused, Muted: r.Muted, Volume: r.Volume,
			SpeakerState: r.SpeakerState, ChangedAt: fromMillis(r.StateChanged)},
		ListenerCount: r.Listeners,
		CreatedAt:     fromMillis(r.Created), LastActiveAt: fromMillis(r.LastActive), ExpiresAt: fromMillis(r.Expires),
	}
	if r.Ended != 0 {
		s.EndedAt = fromMillis(r.Ended)
	}
	return s, nil
}

var _ pentecost.SessionService = (*SessionService)(nil)
