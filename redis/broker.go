package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pentecost/pentecost"
	goredis "github.com/redis/go-redis/v9"
)

// Broker defaults: the history bounds are inmem's, about ten seconds of
// 20 ms audio.
const (
	DefaultHistorySize      = 500
	DefaultHistoryTTL       = 10 * time.Second
	DefaultStreamKeyTTL     = 24 * time.Hour
	DefaultSubscribeTimeout = 5 * time.Second
)

// downProbeInterval is how often a broker that found Redis down checks
// whether it answers again (see Broker.down).
const downProbeInterval = 100 * time.Millisecond

// Broker implements pentecost.Broker for many nodes; docs/redis.md explains
// the design. Per stream (session, language), in the session's hash slot:
//
//	…stream:{id}:<lang>:meta  hash    seq (last number), epoch, pub (last publish ID)
//	…stream:{id}:<lang>:log   stream  entries "<seq>-0" {t: Unix ms, f: payload}
//	…stream:{id}:<lang>       channel sharded Pub/Sub, "<seq> <epoch> <payload>"
//	…stream:{id}:langs        set     languages with keys, for DropSession
//
// Publish is one script: number the frame, append it to the history, trim
// the history to HistorySize and HistoryTTL, and SPUBLISH it. go-redis
// sends a command again when its reply was lost (connection cut, read
// timeout), after the script may have run: each publish carries an ID, and
// the script answers a repeat of the stream's last publish with the number
// it gave, without storing or sending the frame again. A node
// subscribes to a stream's channel only while it has handlers for it, and
// turns what arrives into an ordered, gap-free sequence: a number that
// jumps (a message lost while the connection was down) is filled from the
// history first. A new epoch (Redis lost the stream) shows as frames whose
// Epoch differs from the ones before, numbered from 1 again. While Redis is
// down, Publish fails at once rather than after go-redis's retries (see
// Broker.down).
//
// Call Close before closing the DB.
type Broker struct {
	db *DB

	// HistorySize is the most frames kept per stream; HistoryTTL the oldest
	// age kept (0: no age limit). Set before first use.
	HistorySize int
	HistoryTTL  time.Duration

	// StreamKeyTTL is how long Redis keeps a stream nobody publishes to: a
	// safety net for sessions that ended without DropSession.
	StreamKeyTTL time.Duration

	// SubscribeTimeout bounds how long Subscribe waits for Redis to confirm.
	SubscribeTimeout time.Duration

	// opMu orders subscribe and unsubscribe commands, so that the order
	// they reach Redis in matches the order of the decisions below.
	opMu sync.Mutex

	mu      sync.Mutex
	groups  map[string]*subGroup  // by group key: "" or, on a cluster, the session ID
	streams map[string]*subStream // by channel
	closed  bool

	ctx    context.Context // ends at Close; bounds catch-up reads
	cancel context.CancelFunc

	// pubPrefix and pubCount make each publish's ID: random per broker,
	// then a counter, so IDs are unique across nodes without a random
	// draw per frame.
	pubPrefix string
	pubCount  atomic.Uint64

	// down is set when a publish found Redis unable to serve, and cleared
	// by the next command on the DB's client that Redis answers: this
	// broker's probe (every downProbeInterval), a readiness check, a
	// presence refresh. While it is set Publish fails at once. Otherwise
	// each publish spent go-redis's retries (~50 ms) failing, a speaker's
	// 20 ms chunks queued behind them in its connection, and when Redis
	// came back that queue went out as one burst of audio seconds old but
	// stamped as just received, which no receiver can tell from live
	// audio: 20 s down gave listeners 730 frames up to 13.5 s late
	// (issue 13). Failing fast keeps the queue empty, so what is published
	// after the outage is live. (A Redis that hangs rather than refuses
	// still holds the first publish for go-redis's read timeouts: the
	// realtime server publishes from a queue, so that does not hold up
	// reading the speaker; see realtime/publish.go.)
	down     atomic.Bool
	hookOnce sync.Once
}

// NewBroker returns a broker on db with default bounds.
func NewBroker(db *DB) *Broker {
	ctx, cancel := context.WithCancel(context.Background())
	return &Broker{
		db:               db,
		HistorySize:      DefaultHistorySize,
		HistoryTTL:       DefaultHistoryTTL,
		StreamKeyTTL:     DefaultStreamKeyTTL,
		SubscribeTimeout: DefaultSubscribeTimeout,
		groups:           make(map[string]*subGroup),
		streams:          make(map[string]*subStream),
		ctx:              ctx,
		cancel:           cancel,
		pubPrefix:        newEpoch() + newEpoch() + ":",
	}
}

// DB returns the broker's database.
func (b *Broker) DB() *DB { return b.db }

// streamKeys returns the keys of a stream: meta, log, channel, langs. A
// stream is named by its language, and its codec but for PCM
// (StreamKey.Name), so PCM streams keep the keys they had before Opus.
func (b *Broker) streamKeys(key pentecost.StreamKey) []string {
	base := b.db.Prefix + "stream:{" + key.SessionID + "}:"
	name := key.Name()
	return []string{base + name + ":meta", base + name + ":log", base + name, base + "langs"}
}

// brokerLib trims a stream's history (KEYS[2]) of entries older than cutoff
// (Unix ms), oldest first; entries are in time order but for clock skew
// between publishers, which only keeps a frame a little longer.
const brokerLib = `
local function trim(cutoff)
  while true do
    local e = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
    if #e == 0 or tonumber(e[1][2][2]) >= cutoff then return end
    local seq = tonumber(string.match(e[1][1], '^(%d+)'))
    redis.call('XTRIM', KEYS[2], 'MINID', (seq + 1) .. '-0')
  end
end
local function start(epoch, lang, ttl)
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('SADD', KEYS[4], lang)
  redis.call('PEXPIRE', KEYS[4], ttl)
  return epoch
end
`

// publishScript: KEYS meta, log, channel, langs; ARGV payload, time (ms),
// cutoff (ms, -1: none), max length, new epoch, key TTL (ms), language,
// fan-out ("1", or "0" in tests that simulate a lost message), publish ID.
// A stream without meta starts a new epoch: it is new, or Redis lost it.
// A publish ID equal to the stream's last is a client retry of a publish
// that ran. Only the last ID is kept: enough for a stream's one publisher
// resending its own frame, not if another publish came in between.
var publishScript = goredis.NewScript(brokerLib + `
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq', 'pub')
if m[3] == ARGV[9] then return {tonumber(m[2]), m[1]} end
local epoch = m[1] or start(ARGV[5], ARGV[7], ARGV[6])
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'pub', ARGV[9])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], seq .. '-0', 't', ARGV[2], 'f', ARGV[1])
local cutoff = tonumber(ARGV[3])
if cutoff >= 0 then trim(cutoff) end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
-- langs must outlive the streams it lists, or DropSession misses them.
redis.call('SADD', KEYS[4], ARGV[7])
redis.call('PEXPIRE', KEYS[4], ARGV[6])
if ARGV[8] == '1' then redis.call('SPUBLISH', KEYS[3], seq .. ' ' .. epoch .. ' ' .. ARGV[1]) end
return {seq, epoch}`)

// historyScript: KEYS meta, log, channel, langs; ARGV since (-1: no
// frames), cutoff (ms, -1: none), new epoch, key TTL (ms), language.
// Returns {epoch, last, first, seq, payload, seq, payload, …}.
var historyScript = goredis.NewScript(brokerLib + `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = start(ARGV[3], ARGV[5], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
local last = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local cutoff = tonumber(ARGV[2])
if cutoff >= 0 then trim(cutoff) end
local out = {epoch, last, 0}
local e = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #e > 0 then out[3] = tonumber(string.match(e[1][1], '^(%d+)')) end
local since = tonumber(ARGV[1])
if since >= 0 and since < last then
  for _, x in ipairs(redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+')) do
    out[#out+1] = string.match(x[1], '^(%d+)')
    out[#out+1] = x[2][4]
  end
end
return out`)

// newEpoch returns a random epoch, as inmem's.
func newEpoch() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// cutoff returns the oldest time kept, in Unix ms, or -1 for no limit.
func (b *Broker) cutoff() int64 {
	if b.HistoryTTL <= 0 {
		return -1
	}
	return b.db.Now().Add(-b.HistoryTTL).UnixMilli()
}

func (b *Broker) keyTTL() int64 {
	if b.StreamKeyTTL <= 0 {
		return DefaultStreamKeyTTL.Milliseconds()
	}
	return b.StreamKeyTTL.Milliseconds()
}

// Publish implements pentecost.Broker: one round trip to Redis.
func (b *Broker) Publish(ctx context.Context, key pentecost.StreamKey, f *pentecost.Frame) error {
	return b.publish(ctx, key, f, true)
}

// publish is Publish, with or without the fan-out to subscribers.
func (b *Broker) publish(ctx context.Context, key pentecost.StreamKey, f *pentecost.Frame, fanOut bool) error {
	if f == nil || key.SessionID == "" {
		return pentecost.Errorf(pentecost.EVALIDATIONFIELD, "A frame and a session are required.")
	}
	if b.down.Load() {
		return pentecost.Errorf(pentecost.EUNAVAILABLE, unavailableMessage)
	}
	if f.Time.IsZero() {
		f.Time = b.db.Now()
	}
	if f.Language == "" {
		f.Language = key.Language
	}
	payload, err := encodeFrame(f)
	if err != nil {
		return pentecost.Errorf(pentecost.EVALIDATIONFIELD, "The frame cannot be encoded.")
	}
	size := max(b.HistorySize, 1)
	res, err := publishScript.Run(ctx, b.db.client, b.streamKeys(key),
		payload, f.Time.UnixMilli(), b.cutoff(), size, newEpoch(), b.keyTTL(), key.Name(), fanOutArg(fanOut),
		b.pubPrefix+strconv.FormatUint(b.pubCount.Add(1), 10)).Slice()
	if err != nil {
		err = b.db.storeError(ctx, "publish", err)
		if pentecost.ErrorCode(err) == pentecost.EUNAVAILABLE {
			b.markDown()
		}
		return err
	}
	if len(res) != 2 {
		return fmt.Errorf("redis: malformed publish reply of %d items", len(res))
	}
	epoch, _ := res[1].(string)
	f.Seq, f.Epoch = uint64(toInt(res[0])), epoch
	return nil
}

// markDown makes Publish fail fast until Redis answers again.
func (b *Broker) markDown() {
	// The hook is added at the first outage, not in NewBroker: the DB may
	// not be open yet there.
	b.hookOnce.Do(func() { b.db.client.AddHook(upHook{b}) })
	if !b.down.CompareAndSwap(false, true) {
		return
	}
	b.db.Logger.Warn("publishing refused until Redis answers again")
	go b.probe()
}

// markUp ends what markDown started.
func (b *Broker) markUp() {
	if b.down.CompareAndSwap(true, false) {
		b.db.Logger.Info("Redis answers again: publishing resumed")
	}
}

// probe pings Redis until it answers (or someone else's command did).
func (b *Broker) probe() {
	t := time.NewTicker(downProbeInterval)
	defer t.Stop()
	for b.down.Load() {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		if b.db.client.Ping(ctx).Err() == nil {
			b.markUp()
		}
		cancel()
	}
}

// upHook watches every command of the DB's client while the broker is
// down: one that Redis answered, even with an error reply such as a
// missing key, ends the outage.
type upHook struct{ b *Broker }

func (h upHook) answered(err error) {
	if !h.b.down.Load() {
		return
	}
	var reply goredis.Error
	if err == nil || errors.As(err, &reply) && !unavailable(err) {
		h.b.markUp()
	}
}

func (h upHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h upHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		h.answered(err)
		return err
	}
}

func (h upHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		h.answered(err)
		return err
	}
}

func fanOutArg(on bool) string {
	if on {
		return "1"
	}
	return "0"
}

// History implements pentecost.Broker.
func (b *Broker) History(ctx context.Context, key pentecost.StreamKey, since uint64) ([]*pentecost.Frame, pentecost.StreamPosition, error) {
	return b.history(ctx, key, strconv.FormatUint(since, 10))
}

// Position implements pentecost.Broker.
func (b *Broker) Position(ctx context.Context, key pentecost.StreamKey) (pentecost.StreamPosition, error) {
	_, pos, err := b.history(ctx, key, "-1")
	return pos, err
}

func (b *Broker) history(ctx context.Context, key pentecost.StreamKey, since string) ([]*pentecost.Frame, pentecost.StreamPosition, error) {
	if key.SessionID == "" {
		return nil, pentecost.StreamPosition{}, pentecost.Errorf(pentecost.EVALIDATIONFIELD, "A session is required.")
	}
	res, err := historyScript.Run(ctx, b.db.client, b.streamKeys(key),
		since, b.cutoff(), newEpoch(), b.keyTTL(), key.Name()).Slice()
	if err != nil {
		return nil, pentecost.StreamPosition{}, b.db.storeError(ctx, "history", err)
	}
	if len(res) < 3 || len(res)%2 != 1 {
		return nil, pentecost.StreamPosition{}, fmt.Errorf("redis: malformed history reply of %d items", len(res))
	}
	epoch, _ := res[0].(string)
	pos := pentecost.StreamPosition{Epoch: epoch, Last: uint64(toInt(res[1])), First: uint64(toInt(res[2]))}
	var frames []*pentecost.Frame
	for i := 3; i+1 < len(res); i += 2 {
		seq := uint64(toInt(res[i]))
		payload, _ := res[i+1].(string)
		f, err := decodeFrame(payload, seq, epoch)
		if err != nil {
			return nil, pentecost.StreamPosition{}, err
		}
		frames = append(frames, f)
	}
	return frames, pos, nil
}

// DropSession implements pentecost.Broker: it deletes the numbering and
// history of every stream of the session. Publishing again starts a new
// epoch; subscriptions stay until unsubscribed.
func (b *Broker) DropSession(ctx context.Context, sessionID string) error {
	if sessionID == "" {
		return pentecost.Errorf(pentecost.EVALIDATIONFIELD, "A session is required.")
	}
	langsKey := b.streamKeys(pentecost.StreamKey{SessionID: sessionID})[3]
	langs, err := b.db.client.SMembers(ctx, langsKey).Result()
	if err != nil {
		return b.db.storeError(ctx, "drop session", err)
	}
	keys := []string{langsKey}
	for _, l := range langs {
		lang, codec := pentecost.ParseStreamName(l)
		k := b.streamKeys(pentecost.StreamKey{SessionID: sessionID, Language: lang, Codec: codec})
		keys = append(keys, k[0], k[1])
	}
	return b.db.storeError(ctx, "drop session", b.db.client.Del(ctx, keys...).Err())
}

var _ pentecost.Broker = (*Broker)(nil)
