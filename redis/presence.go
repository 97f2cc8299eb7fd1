package redis

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pentecost/pentecost"
	goredis "github.com/redis/go-redis/v9"
)

// Presence timing. Every entry (a listener connection, a worker's language
// claim) expires DefaultEntryTTL after it was last joined or refreshed; a
// node refreshes its entries every DefaultRefreshInterval, so a live node's
// entries never expire, and a dead node's leave the counts within the TTL.
const (
	DefaultEntryTTL        = 30 * time.Second
	DefaultRefreshInterval = 10 * time.Second
)

// presenceKeyTTL is how long Redis keeps an untouched session's presence
// keys: a safety net far beyond the logical expiry, which uses DB.Now.
const presenceKeyTTL = time.Hour

// Presence implements pentecost.Presence for many nodes. Per session, in
// one hash slot ({session ID}):
//
//	…presence:{id}:conns   sorted set  connID → expiry (Unix ms from DB.Now)
//	…presence:{id}:langs   hash        connID → stream name (language, or
//	                       "language.codec": PresenceEntry.StreamName)
//	…presence:{id}:counts  hash        stream name → listeners
//	…presence:{id}:claims  sorted set  "language\nworkerID" → expiry
//	…presence:{id}:speakers sorted set speaker connID → expiry
//	…presence:{id}:replaced sorted set connID → expiry: connections a
//	                       refresh replaced (Replace), never put back
//
// one index of sessions with listeners, …presence:sessions (session ID
// → latest expiry), and the workers' offers, …presence:offers, a sorted
// set of "workerID\nsource\ntarget" → expiry. Each change is one Lua script, so the cap holds across
// nodes and counts never go negative. Every script first removes the
// session's expired entries, so a crashed node's listeners leave the counts
// at the first call after their expiry.
type Presence struct {
	db *DB

	// EntryTTL is how long an entry lives without a refresh (DefaultEntryTTL).
	EntryTTL time.Duration
}

// NewPresence returns a presence on db with the default entry TTL.
func NewPresence(db *DB) *Presence {
	return &Presence{db: db, EntryTTL: DefaultEntryTTL}
}

func (p *Presence) keys(sessionID string) []string {
	base := p.db.Prefix + "presence:{" + sessionID + "}:"
	return []string{base + "conns", base + "langs", base + "counts"}
}

func (p *Presence) claimsKey(sessionID string) string {
	return p.db.Prefix + "presence:{" + sessionID + "}:claims"
}

// replacedKey holds the session's connections a refresh replaced while
// their node still holds them. Refresh renews such an entry instead of
// putting the connection back, and reports it so that the node closes the
// connection; Leave forgets it.
func (p *Presence) replacedKey(sessionID string) string {
	return p.db.Prefix + "presence:{" + sessionID + "}:replaced"
}

// keysReplaced is keys with the replaced set as KEYS[4].
func (p *Presence) keysReplaced(sessionID string) []string {
	return append(p.keys(sessionID), p.replacedKey(sessionID))
}

func (p *Presence) speakersKey(sessionID string) string {
	return p.db.Prefix + "presence:{" + sessionID + "}:speakers"
}

func (p *Presence) indexKey() string { return p.db.Prefix + "presence:sessions" }

// offersKey holds every worker connection's offer. Offers are not session
// data (they apply to every session of a source language), so one key
// outside the sessions' slots holds them all: workers are few.
func (p *Presence) offersKey() string { return p.db.Prefix + "presence:offers" }

// presenceLib is shared by the presence scripts: KEYS[1..3] are a session's
// conns, langs and counts; now is in Unix milliseconds.
const presenceLib = `
local function expire(now)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  for _, id in ipairs(gone) do
    local lang = redis.call('HGET', KEYS[2], id)
    if lang then
      if redis.call('HINCRBY', KEYS[3], lang, -1) <= 0 then redis.call('HDEL', KEYS[3], lang) end
      redis.call('HDEL', KEYS[2], id)
    end
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) end
end
local function counts(out)
  out[#out+1] = redis.call('ZCARD', KEYS[1])
  local h = redis.call('HGETALL', KEYS[3])
  for i = 1, #h do out[#out+1] = h[i] end
  return out
end
local function move(id, from, to)
  if from == to then return end
  if redis.call('HINCRBY', KEYS[3], from, -1) <= 0 then redis.call('HDEL', KEYS[3], from) end
  redis.call('HINCRBY', KEYS[3], to, 1)
  redis.call('HSET', KEYS[2], id, to)
end
local function add(id, lang, expiry)
  redis.call('ZADD', KEYS[1], expiry, id)
  redis.call('HSET', KEYS[2], id, lang)
  redis.call('HINCRBY', KEYS[3], lang, 1)
end
local function keep(ttl)
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
`

// joinScript: ARGV conn, language, max, refresh (0/1), now, expiry, key TTL.
// Returns {-1} when full, else {total, language, count, …}.
var joinScript = goredis.NewScript(presenceLib + `
expire(tonumber(ARGV[5]))
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then
  move(ARGV[1], old, ARGV[2])
  redis.call('ZADD', KEYS[1], ARGV[6], ARGV[1])
else
  local max = tonumber(ARGV[3])
  if max > 0 and ARGV[4] == '0' and redis.call('ZCARD', KEYS[1]) >= max then return {-1} end
  add(ARGV[1], ARGV[2], ARGV[6])
end
keep(ARGV[7])
return counts({})`)

// leaveScript: ARGV conn, now; KEYS[4] the replaced set, where a replaced
// connection that leaves is forgotten. Returns {left (0/1), total,
// language, count, …}.
var leaveScript = goredis.NewScript(presenceLib + `
expire(tonumber(ARGV[2]))
redis.call('ZREM', KEYS[4], ARGV[1])
local old = redis.call('HGET', KEYS[2], ARGV[1])
local left = 0
if old then
  left = 1
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[1], ARGV[1])
  if redis.call('HINCRBY', KEYS[3], old, -1) <= 0 then redis.call('HDEL', KEYS[3], old) end
end
return counts({left})`)

// changeScript: ARGV conn, language, now, key TTL. Returns {-1} when
// absent. The listener keeps its codec: the suffix of its stream's name
// (pentecost.RenameStream). move can delete the counts hash (its last
// language left) and recreate it without expiry: keep sets it again.
var changeScript = goredis.NewScript(presenceLib + `
expire(tonumber(ARGV[3]))
local old = redis.call('HGET', KEYS[2], ARGV[1])
if not old then return {-1} end
move(ARGV[1], old, ARGV[2] .. (string.match(old, '%..*$') or ''))
keep(ARGV[4])
return counts({})`)

// countsScript: ARGV now.
var countsScript = goredis.NewScript(presenceLib + `
expire(tonumber(ARGV[1]))
return counts({})`)

// refreshScript: ARGV now, expiry, key TTL, then connID, language pairs;
// KEYS[4] the replaced set. Present entries are extended (their language
// corrected), missing ones added, past the cap, as a refresh join would;
// a replaced connection is not added: its mark in the replaced set is
// renewed instead, for as long as its node names it. Returns {total,
// replaced connID, …}: the node closes those.
var refreshScript = goredis.NewScript(presenceLib + `
expire(tonumber(ARGV[1]))
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
local replaced = {}
for i = 4, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[4], ARGV[i]) then
    redis.call('ZADD', KEYS[4], ARGV[2], ARGV[i])
    replaced[#replaced+1] = ARGV[i]
  else
    local old = redis.call('HGET', KEYS[2], ARGV[i])
    if old then
      move(ARGV[i], old, ARGV[i+1])
      redis.call('ZADD', KEYS[1], ARGV[2], ARGV[i])
    else
      add(ARGV[i], ARGV[i+1], ARGV[2])
    end
  end
end
keep(ARGV[3])
if #replaced > 0 then redis.call('PEXPIRE', KEYS[4], ARGV[3]) end
table.insert(replaced, 1, redis.call('ZCARD', KEYS[1]))
return replaced`)

// replaceScript: ARGV old conn, new conn, language, now, expiry, key TTL;
// KEYS[4] the replaced set. Returns {-1} when the old connection is not
// present, else the counts after removing it (marked replaced) and adding
// the new one.
var replaceScript = goredis.NewScript(presenceLib + `
expire(tonumber(ARGV[4]))
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[4])
local old = redis.call('HGET', KEYS[2], ARGV[1])
if not old then return {-1} end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if redis.call('HINCRBY', KEYS[3], old, -1) <= 0 then redis.call('HDEL', KEYS[3], old) end
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
redis.call('PEXPIRE', KEYS[4], ARGV[6])
local cur = redis.call('HGET', KEYS[2], ARGV[2])
if cur then
  move(ARGV[2], cur, ARGV[3])
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[2])
else
  add(ARGV[2], ARGV[3], ARGV[5])
end
keep(ARGV[6])
return counts({})`)

// Join implements pentecost.Presence.
func (p *Presence) Join(ctx context.Context, e pentecost.PresenceEntry, max int, refresh bool) (pentecost.PresenceCounts, error) {
	if e.SessionID == "" || e.ConnID == "" {
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.EVALIDATIONFIELD, "Session and connection are required.")
	}
	now, expiry := p.times()
	flag := 0
	if refresh {
		flag = 1
	}
	res, err := joinScript.Run(ctx, p.db.client, p.keys(e.SessionID),
		e.ConnID, e.StreamName(), max, flag, now, expiry, presenceKeyTTL.Milliseconds()).Slice()
	if err != nil {
		return pentecost.PresenceCounts{}, p.db.storeError(ctx, "presence join", err)
	}
	if full(res) {
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.ESESSIONFULL, "Session is full.")
	}
	if err := p.index(ctx, e.SessionID, expiry); err != nil {
		return pentecost.PresenceCounts{}, err
	}
	return parseCounts(res)
}

// Replace implements pentecost.Presence. One script checks that the old
// connection is present, removes it, marks it replaced and adds the new
// one, so that of two refreshes presenting one ticket (on any nodes) one
// wins, and the node still holding the old connection cannot put it back.
func (p *Presence) Replace(ctx context.Context, oldConnID string, e pentecost.PresenceEntry) (pentecost.PresenceCounts, error) {
	if e.SessionID == "" || e.ConnID == "" || oldConnID == "" || oldConnID == e.ConnID {
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.EVALIDATIONFIELD, "Session, connection and a different old connection are required.")
	}
	now, expiry := p.times()
	res, err := replaceScript.Run(ctx, p.db.client, p.keysReplaced(e.SessionID),
		oldConnID, e.ConnID, e.StreamName(), now, expiry, presenceKeyTTL.Milliseconds()).Slice()
	if err != nil {
		return pentecost.PresenceCounts{}, p.db.storeError(ctx, "presence replace", err)
	}
	if full(res) {
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.ENOTFOUND, "The connection to replace is not present.")
	}
	if err := p.index(ctx, e.SessionID, expiry); err != nil {
		return pentecost.PresenceCounts{}, err
	}
	return parseCounts(res)
}

// index records that a session has listeners until at least expiry. The
// index is a global key, outside the session's slot, so it is updated after
// the script; Sessions checks every candidate against the session's keys.
func (p *Presence) index(ctx context.Context, sessionID string, expiry int64) error {
	err := p.db.client.ZAddGT(ctx, p.indexKey(), goredis.Z{Score: float64(expiry), Member: sessionID}).Err()
	return p.db.storeError(ctx, "presence index", err)
}

// Leave implements pentecost.Presence.
func (p *Presence) Leave(ctx context.Context, sessionID, connID string) (pentecost.PresenceCounts, bool, error) {
	if sessionID == "" {
		return emptyCounts(), false, nil
	}
	now, _ := p.times()
	res, err := leaveScript.Run(ctx, p.db.client, p.keysReplaced(sessionID), connID, now).Slice()
	if err != nil {
		return pentecost.PresenceCounts{}, false, p.db.storeError(ctx, "presence leave", err)
	}
	c, err := parseCounts(res[1:])
	return c, toInt(res[0]) == 1, err
}

// ChangeLanguage implements pentecost.Presence.
func (p *Presence) ChangeLanguage(ctx context.Context, sessionID, connID, language string) (pentecost.PresenceCounts, error) {
	if sessionID == "" {
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.ENOTFOUND, "Listener is not present.")
	}
	now, _ := p.times()
	res, err := changeScript.Run(ctx, p.db.client, p.keys(sessionID), connID, language, now, presenceKeyTTL.Milliseconds()).Slice()
	if err != nil {
		return pentecost.PresenceCounts{}, p.db.storeError(ctx, "presence change language", err)
	}
	if full(res) {
		return pentecost.PresenceCounts{}, pentecost.Errorf(pentecost.ENOTFOUND, "Listener is not present.")
	}
	return parseCounts(res)
}

// Counts implements pentecost.Presence.
func (p *Presence) Counts(ctx context.Context, sessionID string) (pentecost.PresenceCounts, error) {
	if sessionID == "" {
		return emptyCounts(), nil
	}
	now, _ := p.times()
	res, err := countsScript.Run(ctx, p.db.client, p.keys(sessionID), now).Slice()
	if err != nil {
		return pentecost.PresenceCounts{}, p.db.storeError(ctx, "presence counts", err)
	}
	return parseCounts(res)
}

// Sessions implements pentecost.Presence. It reads the index, drops
// sessions whose entries have all expired, and counts each candidate.
func (p *Presence) Sessions(ctx context.Context) (map[string]pentecost.PresenceCounts, error) {
	now, _ := p.times()
	if err := p.db.client.ZRemRangeByScore(ctx, p.indexKey(), "-inf", strconv.FormatInt(now, 10)).Err(); err != nil {
		return nil, p.db.storeError(ctx, "presence sessions", err)
	}
	ids, err := p.db.client.ZRange(ctx, p.indexKey(), 0, -1).Result()
	if err != nil {
		return nil, p.db.storeError(ctx, "presence sessions", err)
	}
	out := make(map[string]pentecost.PresenceCounts, len(ids))
	for _, id := range ids {
		c, err := p.Counts(ctx, id)
		if err != nil {
			return nil, err
		}
		if c.Total > 0 {
			out[id] = c
		}
	}
	return out, nil
}

// Refresh implements pentecost.Presence: present entries live EntryTTL
// from now (and their language is corrected), missing ones are added back,
// past the cap, as refresh joins would be. A hub that calls it every
// DefaultRefreshInterval recovers its counts by itself after Redis lost its
// data or the node was cut off for longer than EntryTTL. It returns the
// entries a refresh replaced, through any node, which their node closes.
// Errors: EUNAVAILABLE.
func (p *Presence) Refresh(ctx context.Context, sessionID string, entries []pentecost.PresenceEntry) ([]string, error) {
	if sessionID == "" || len(entries) == 0 {
		return nil, nil
	}
	args := make([]any, 0, 3+2*len(entries))
	now, expiry := p.times()
	args = append(args, now, expiry, presenceKeyTTL.Milliseconds())
	for _, e := range entries {
		if e.ConnID != "" {
			args = append(args, e.ConnID, e.StreamName())
		}
	}
	res, err := refreshScript.Run(ctx, p.db.client, p.keysReplaced(sessionID), args...).Slice()
	if err != nil {
		return nil, p.db.storeError(ctx, "presence refresh", err)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("redis: empty presence refresh reply")
	}
	var replaced []string
	for _, v := range res[1:] {
		if id, ok := v.(string); ok {
			replaced = append(replaced, id)
		}
	}
	if toInt(res[0]) == 0 {
		return replaced, nil
	}
	return replaced, p.index(ctx, sessionID, expiry)
}

// RemoveSession implements pentecost.Presence.
func (p *Presence) RemoveSession(ctx context.Context, sessionID string) error {
	if sessionID == "" {
		return nil
	}
	keys := append(p.keysReplaced(sessionID), p.claimsKey(sessionID), p.speakersKey(sessionID))
	if err := p.db.client.Del(ctx, keys...).Err(); err != nil {
		return p.db.storeError(ctx, "presence remove session", err)
	}
	return p.db.storeError(ctx, "presence remove session", p.db.client.ZRem(ctx, p.indexKey(), sessionID).Err())
}

// claimScript: ARGV now, member, expiry, key TTL, mode (claim, release
// or list). Returns the members left after the change.
var claimScript = goredis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if ARGV[5] == 'claim' then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
elseif ARGV[5] == 'release' then
  redis.call('ZREM', KEYS[1], ARGV[2])
end
return redis.call('ZRANGE', KEYS[1], 0, -1)`)

// exclusiveScript: ARGV now, member, expiry, key TTL, language prefix
// ("language\n"), replaced member. It claims like claimScript and returns
// 1, unless a member of the language other than ARGV[2] and ARGV[6] is
// present: then it returns 0 and changes nothing.
var exclusiveScript = goredis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 1, #ARGV[5]) == ARGV[5] and m ~= ARGV[2] and m ~= ARGV[6] then return 0 end
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`)

// claimSep separates a claim's language from its worker ID. Language codes
// never contain it.
const claimSep = "\n"

// ClaimLanguage implements pentecost.Presence. A claim expires like a
// listener entry: the node of a connected worker claims again at every
// refresh.
func (p *Presence) ClaimLanguage(ctx context.Context, sessionID, language, workerID string) (bool, error) {
	_, err := p.claims(ctx, sessionID, language, workerID, "claim")
	return err == nil, err
}

// ClaimLanguageExclusive implements pentecost.Presence. One script checks
// and claims, so two nodes cannot both win.
func (p *Presence) ClaimLanguageExclusive(ctx context.Context, sessionID, language, workerID, replaces string) error {
	if sessionID == "" {
		return pentecost.Errorf(pentecost.EVALIDATIONFIELD, "A session is required.")
	}
	now, expiry := p.times()
	replaced := ""
	if replaces != "" {
		replaced = language + claimSep + replaces
	}
	ok, err := exclusiveScript.Run(ctx, p.db.client, []string{p.claimsKey(sessionID)},
		now, language+claimSep+workerID, expiry, presenceKeyTTL.Milliseconds(), language+claimSep, replaced).Int()
	if err != nil {
		return p.db.storeError(ctx, "presence claims", err)
	}
	if ok == 0 {
		return pentecost.Errorf(pentecost.ECONFLICT, "Another worker already produces this language.")
	}
	return nil
}

// ReleaseLanguage implements pentecost.Presence.
func (p *Presence) ReleaseLanguage(ctx context.Context, sessionID, language, workerID string) (bool, error) {
	langs, err := p.claims(ctx, sessionID, language, workerID, "release")
	if err != nil {
		return false, err
	}
	_, produced := langs[language]
	return produced, nil
}

// ProducedLanguages implements pentecost.Presence.
func (p *Presence) ProducedLanguages(ctx context.Context, sessionID string) ([]string, error) {
	langs, err := p.claims(ctx, sessionID, "", "", "list")
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(langs))
	for l := range langs {
		out = append(out, l)
	}
	sort.Strings(out)
	return out, nil
}

// claims runs claimScript and returns the languages claimed afterwards.
func (p *Presence) claims(ctx context.Context, sessionID, language, workerID, mode string) (map[string]struct{}, error) {
	if sessionID == "" {
		return nil, pentecost.Errorf(pentecost.EVALIDATIONFIELD, "A session is required.")
	}
	now, expiry := p.times()
	members, err := claimScript.Run(ctx, p.db.client, []string{p.claimsKey(sessionID)},
		now, language+claimSep+workerID, expiry, presenceKeyTTL.Milliseconds(), mode).StringSlice()
	if err != nil {
		return nil, p.db.storeError(ctx, "presence claims", err)
	}
	langs := make(map[string]struct{}, len(members))
	for _, m := range members {
		lang, _, _ := strings.Cut(m, claimSep)
		langs[lang] = struct{}{}
	}
	return langs, nil
}

// speakerScript: ARGV now, conn, expiry, key TTL, mode (join, leave or
// check). join returns how many other speaker connections were present,
// check how many are present.
var speakerScript = goredis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if ARGV[5] == 'join' then
  local n = redis.call('ZCARD', KEYS[1])
  if redis.call('ZSCORE', KEYS[1], ARGV[2]) then n = n - 1 end
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return n
elseif ARGV[5] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  return 0
end
return redis.call('ZCARD', KEYS[1])`)

func (p *Presence) speaker(ctx context.Context, sessionID, connID, mode string) (int, error) {
	if sessionID == "" {
		return 0, pentecost.Errorf(pentecost.EVALIDATIONFIELD, "A session is required.")
	}
	now, expiry := p.times()
	n, err := speakerScript.Run(ctx, p.db.client, []string{p.speakersKey(sessionID)},
		now, connID, expiry, presenceKeyTTL.Milliseconds(), mode).Int()
	if err != nil {
		return 0, p.db.storeError(ctx, "presence speaker", err)
	}
	return n, nil
}

// SpeakerJoin implements pentecost.Presence. The entry expires like a
// listener's; the speaker's node joins again at every refresh.
func (p *Presence) SpeakerJoin(ctx context.Context, sessionID, connID string) (bool, error) {
	if connID == "" {
		return false, pentecost.Errorf(pentecost.EVALIDATIONFIELD, "Session and connection are required.")
	}
	n, err := p.speaker(ctx, sessionID, connID, "join")
	return n > 0, err
}

// SpeakerLeave implements pentecost.Presence.
func (p *Presence) SpeakerLeave(ctx context.Context, sessionID, connID string) error {
	if sessionID == "" {
		return nil
	}
	_, err := p.speaker(ctx, sessionID, connID, "leave")
	return err
}

// SpeakerConnected implements pentecost.Presence.
func (p *Presence) SpeakerConnected(ctx context.Context, sessionID string) (bool, error) {
	if sessionID == "" {
		return false, nil
	}
	n, err := p.speaker(ctx, sessionID, "", "check")
	return n > 0, err
}

// offerScript: ARGV now, member prefix of the worker ("workerID\n"),
// expiry, key TTL, then the members to add. It removes expired members and
// the worker's previous ones, then adds the new ones.
var offerScript = goredis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 1, #ARGV[2]) == ARGV[2] then redis.call('ZREM', KEYS[1], m) end
end
for i = 5, #ARGV do redis.call('ZADD', KEYS[1], ARGV[3], ARGV[i]) end
if #ARGV >= 5 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1`)

// offeredScript: ARGV now. Returns the live members.
var offeredScript = goredis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)`)

// OfferLanguages implements pentecost.Presence. The offer expires like a
// listener entry; the worker's node offers again at every refresh.
func (p *Presence) OfferLanguages(ctx context.Context, workerID string, offer pentecost.LanguageOffer) error {
	if workerID == "" || strings.Contains(workerID, claimSep) {
		return pentecost.Errorf(pentecost.EVALIDATIONFIELD, "A worker connection is required.")
	}
	now, expiry := p.times()
	args := []any{now, workerID + claimSep, expiry, presenceKeyTTL.Milliseconds()}
	for src, targets := range offer {
		if src == "" || strings.Contains(src, claimSep) {
			continue
		}
		for _, t := range targets {
			if t != "" && !strings.Contains(t, claimSep) {
				args = append(args, workerID+claimSep+src+claimSep+t)
			}
		}
	}
	if err := offerScript.Run(ctx, p.db.client, []string{p.offersKey()}, args...).Err(); err != nil {
		return p.db.storeError(ctx, "presence offer", err)
	}
	return nil
}

// OfferedLanguages implements pentecost.Presence.
func (p *Presence) OfferedLanguages(ctx context.Context, source string) ([]string, error) {
	now, _ := p.times()
	members, err := offeredScript.Run(ctx, p.db.client, []string{p.offersKey()}, now).StringSlice()
	if err != nil {
		return nil, p.db.storeError(ctx, "presence offers", err)
	}
	seen := map[string]bool{}
	out := []string{}
	for _, m := range members {
		parts := strings.Split(m, claimSep)
		if len(parts) == 3 && parts[1] == source && !seen[parts[2]] {
			seen[parts[2]] = true
			out = append(out, parts[2])
		}
	}
	sort.Strings(out)
	return out, nil
}

// AllOffered implements pentecost.Presence.
func (p *Presence) AllOffered(ctx context.Context) (pentecost.LanguageOffer, error) {
	now, _ := p.times()
	members, err := offeredScript.Run(ctx, p.db.client, []string{p.offersKey()}, now).StringSlice()
	if err != nil {
		return nil, p.db.storeError(ctx, "presence offers", err)
	}
	out := pentecost.LanguageOffer{}
	for _, m := range members {
		parts := strings.Split(m, claimSep)
		if len(parts) == 3 && !slices.Contains(out[parts[1]], parts[2]) {
			out[parts[1]] = append(out[parts[1]], parts[2])
		}
	}
	for _, targets := range out {
		sort.Strings(targets)
	}
	return out, nil
}

// times returns now and the expiry of an entry made now, in Unix ms.
func (p *Presence) times() (now, expiry int64) {
	t := p.db.Now()
	ttl := p.EntryTTL
	if ttl <= 0 {
		ttl = DefaultEntryTTL
	}
	return t.UnixMilli(), t.Add(ttl).UnixMilli()
}

func full(res []any) bool { return len(res) == 1 && toInt(res[0]) == -1 }

func emptyCounts() pentecost.PresenceCounts {
	return pentecost.CountsByStream(0, nil)
}

// parseCounts reads {total, language, count, …}.
func parseCounts(res []any) (pentecost.PresenceCounts, error) {
	if len(res) == 0 || len(res)%2 != 1 {
		return pentecost.PresenceCounts{}, fmt.Errorf("redis: malformed presence reply of %d items", len(res))
	}
	byStream := make(map[string]int, len(res)/2)
	for i := 1; i+1 < len(res); i += 2 {
		name, _ := res[i].(string)
		byStream[name] = toInt(res[i+1])
	}
	return pentecost.CountsByStream(toInt(res[0]), byStream), nil
}

// toInt reads an integer reply, which Redis gives as an integer or, from a
// hash, as a string.
func toInt(v any) int {
	switch v := v.(type) {
	case int64:
		return int(v)
	case string:
		n, _ := strconv.Atoi(v)
		return n
	}
	return 0
}

var _ pentecost.Presence = (*Presence)(nil)
