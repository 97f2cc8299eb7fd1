package realtime

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sessionid"
)

// Lock order: hub.mu → hubSession.mu → hubStream.mu → conn.wmu. Broker calls
// that deliver (Publish) are never made while holding any of them, because
// delivery takes hubStream.mu and hubSession.mu.
//
// hubSession.presenceMu and Server.claimMu come before all of them and are
// held across presence round trips on purpose: they order a session's
// presence writes (cluster.go) and a node's language claims.

// hub is this node's view of the sessions it serves: which local
// connections hear which stream.
type hub struct {
	srv *Server

	// staleWarned is when stale audio was last logged (Unix ns): once a
	// minute at most, however many streams skip.
	staleWarned atomic.Int64

	mu       sync.Mutex
	sessions map[string]*hubSession
	conns    map[*conn]struct{}
	closed   bool
	dirty    map[string]struct{} // sessions whose count must be stored

	// flushMu makes flushes (the ticker's, the last one at shutdown) run
	// one at a time, across their store writes: otherwise an older count
	// could be stored after a newer one.
	flushMu sync.Mutex
}

// hubSession is a session with at least one local connection (or a
// speaker grace period running).
type hubSession struct {
	events eventQueue // control events waiting for their handler (events.go)
	id     string
	hub    *hub

	// presenceMu orders this node's presence writes for the session's
	// listeners: the cluster refresh holds it exclusively from its snapshot
	// of the listeners until Presence.Refresh returns; leaves, language
	// changes and RemoveSession hold it shared around their presence call.
	// Without it a refresh put back a listener that had just left, or moved
	// one back to its old language.
	presenceMu sync.RWMutex

	mu          sync.Mutex
	info        pentecost.Session // cached; state kept current by events
	stateEvents uint64            // sessionUpdated events handled (subscribeControl)
	refs        int
	ended       bool
	speaker     *conn
	speakers    map[*conn]struct{}
	listeners   map[*conn]struct{}
	workers     map[*conn]struct{} // workers subscribed to the source audio
	streams     map[string]*hubStream
	unsubCtl    func()

	// ready is closed once the control stream is subscribed (readyErr
	// says whether that failed); see acquire and cluster.go.
	ready    chan struct{}
	readyErr error

	// Speaker sequence dedup across refresh (sendAudio sequenceNumber).
	haveSeq bool
	lastSeq uint64

	// pub is the speakers' audio on its way to the broker (publish.go).
	pub *publishQueue

	grace     *time.Timer
	graceGen  uint64 // counts grace periods, so a timer knows whether it is still the current one
	graceUser *pentecost.User

	// Last counts reported to the speaker, for the >10 % rule.
	statusCounts pentecost.PresenceCounts
	statusSent   bool

	// Workers' reports of the languages they produce (reportLanguageStatus),
	// and when the speaker last heard of a change (langstatus.go).
	langStatus      map[string]pentecost.LanguageReport
	langStatusSent  time.Time
	langStatusTimer *time.Timer

	lastTouch time.Time
}

// hubStream is one stream this node receives from the broker.
type hubStream struct {
	key  pentecost.StreamKey
	sess *hubSession

	mu    sync.Mutex
	subs  map[*conn]*streamSub
	unsub func()
	// Write coalescing (deliver): the frames held, and the timer that
	// writes them if no frame follows.
	co    coalescer
	flush *time.Timer
	// skipping is set while some subscriber has a run of stale audio it
	// has not been told of (skipStale): the next audio frame tells them.
	skipping bool
}

// streamSub is where one connection is in a stream.
type streamSub struct {
	last  uint64
	epoch string
	// A run of stale audio skipped and not yet reported: its first and
	// last numbers and how many audio frames it holds (captions in between
	// were sent).
	skipFrom, skipTo uint64
	skipped          int
}

// Label values of pentecost_stale_frames_skipped_total.
const (
	skipLive    = "live"
	skipResume  = "resume"
	skipPublish = "publish" // dropped before publishing (publish.go)
)

func newHub(s *Server) *hub {
	return &hub{
		srv:      s,
		sessions: make(map[string]*hubSession),
		conns:    make(map[*conn]struct{}),
		dirty:    make(map[string]struct{}),
	}
}

func (h *hub) addConn(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.srv.isClosing() {
		return false
	}
	h.conns[c] = struct{}{}
	return true
}

func (h *hub) removeConn(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

func (h *hub) allConns() []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

func (h *hub) connCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// acquire returns the hub session for s, creating it (and subscribing to
// its control stream) on first use. Each acquire is matched by a release.
// The hub lock is not held while the broker subscribes, which on a shared
// broker is a network round trip: others acquiring the same session wait
// for that subscription, everyone else carries on.
// liveSession returns a copy of the session id (as a person typed it)
// when this node holds it and it has not ended, else nil.
func (h *hub) liveSession(id string) *pentecost.Session {
	id, err := sessionid.Normalize(id)
	if err != nil {
		return nil // the store reports the error
	}
	h.mu.Lock()
	hs := h.sessions[id]
	h.mu.Unlock()
	if hs == nil {
		return nil
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.ended || hs.info.Status == pentecost.SessionEnded {
		return nil
	}
	sess := hs.info
	return &sess
}

func (h *hub) acquire(ctx context.Context, s *pentecost.Session) (*hubSession, error) {
	h.mu.Lock()
	hs := h.sessions[s.ID]
	if hs != nil {
		hs.mu.Lock()
		hs.refs++
		hs.mu.Unlock()
		h.mu.Unlock()
		if err := hs.waitReady(ctx); err != nil {
			h.release(hs)
			return nil, err
		}
		return hs, nil
	}
	hs = &hubSession{
		id:        s.ID,
		hub:       h,
		info:      *s,
		refs:      1,
		speakers:  make(map[*conn]struct{}),
		listeners: make(map[*conn]struct{}),
		workers:   make(map[*conn]struct{}),
		streams:   make(map[string]*hubStream),
		ready:     make(chan struct{}),
	}
	hs.pub = newPublishQueue(h.srv, hs, speakerPublishQueue)
	h.sessions[s.ID] = hs
	h.mu.Unlock()
	if err := hs.subscribeControl(ctx); err != nil {
		h.release(hs)
		return nil, err
	}
	return hs, nil
}

// release drops a reference; the last one removes the session from the hub.
func (h *hub) release(hs *hubSession) {
	h.mu.Lock()
	hs.mu.Lock()
	hs.refs--
	last := hs.refs <= 0
	var unsubs []func()
	if last {
		if h.sessions[hs.id] == hs {
			delete(h.sessions, hs.id)
		}
		unsubs = append(unsubs, hs.unsubCtl)
		for lang, st := range hs.streams {
			unsubs = append(unsubs, st.unsub)
			delete(hs.streams, lang)
		}
	}
	hs.mu.Unlock()
	h.mu.Unlock()
	for _, u := range unsubs {
		if u != nil {
			u()
		}
	}
}

// session returns the hub session of id if this node has one.
func (h *hub) session(id string) *hubSession {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[id]
}

// markDirty schedules a session's listener count to be stored.
func (h *hub) markDirty(id string) {
	h.mu.Lock()
	h.dirty[id] = struct{}{}
	h.mu.Unlock()
}

// flushCounts stores the listener counts of sessions that changed. Counts
// come from presence, which is exact; the store is told in batches so that
// a burst of joins costs one write per session, not one per join.
func (h *hub) flushCounts(ctx context.Context) {
	h.flushMu.Lock()
	defer h.flushMu.Unlock()
	h.mu.Lock()
	if len(h.dirty) == 0 {
		h.mu.Unlock()
		return
	}
	ids := make([]string, 0, len(h.dirty))
	for id := range h.dirty {
		ids = append(ids, id)
	}
	clear(h.dirty)
	h.mu.Unlock()
	for _, id := range ids {
		counts, err := h.srv.Presence.Counts(ctx, id)
		if err == nil {
			err = h.srv.Sessions.SetListenerCount(ctx, id, counts.Total)
		}
		switch pentecost.ErrorCode(err) {
		case "", pentecost.ESESSIONNOTFOUND, pentecost.ESESSIONENDED:
		default:
			h.srv.Logger.Warn("store listener count", logSession, id, logError, err)
			h.markDirty(id) // try again on the next tick
		}
	}
}

// stopGraces cancels speaker grace periods: on shutdown the session must
// survive for the speaker to reconnect to another node or the new process.
func (h *hub) stopGraces() {
	h.mu.Lock()
	h.closed = true
	sessions := make([]*hubSession, 0, len(h.sessions))
	for _, hs := range h.sessions {
		sessions = append(sessions, hs)
	}
	h.mu.Unlock()
	for _, hs := range sessions {
		hs.mu.Lock()
		held := hs.grace != nil
		if held {
			// Even a timer that already fired: graceExpired finds
			// hs.grace nil and leaves the reference to us.
			hs.grace.Stop()
			hs.grace = nil
		}
		hs.mu.Unlock()
		if held {
			h.release(hs) // the grace period's reference
		}
	}
}

// key returns the key of the session's stream of a language and codec.
func (hs *hubSession) key(lang, codec string) pentecost.StreamKey {
	return pentecost.StreamKey{SessionID: hs.id, Language: lang, Codec: codec}
}

// stream returns the hub stream of a language and codec, subscribing to
// the broker on first use. Called with hs.mu held.
func (hs *hubSession) streamLocked(ctx context.Context, key pentecost.StreamKey) (*hubStream, error) {
	name := key.Name()
	if st := hs.streams[name]; st != nil {
		return st, nil
	}
	st := &hubStream{key: key, sess: hs, subs: make(map[*conn]*streamSub)}
	unsub, err := hs.hub.srv.Broker.Subscribe(ctx, st.key, st.deliver)
	if err != nil {
		return nil, err
	}
	st.unsub = unsub
	hs.streams[name] = st
	return st, nil
}

// unsubscribeLocked removes c from the stream of key, dropping the broker
// subscription when it was the last. Called with hs.mu held.
func (hs *hubSession) unsubscribeLocked(c *conn, key pentecost.StreamKey) {
	name := key.Name()
	st := hs.streams[name]
	if st == nil {
		return
	}
	st.mu.Lock()
	delete(st.subs, c)
	empty := len(st.subs) == 0
	st.mu.Unlock()
	if empty {
		delete(hs.streams, name)
		if st.unsub != nil {
			// The in-memory broker's unsubscribe only takes its own lock;
			// it never waits for a delivery, so calling it here is safe.
			st.unsub()
		}
	}
}

// subscribe adds c to the stream of key and queues, in this order, the
// reply built by first (which learns the stream position), a streamGap
// notice if the client's position cannot be honoured, the frames it missed
// (but audio older than MaxFrameAge, reported by an audioSkipped instead)
// and then live frames. Holding the stream lock while reading the history
// means no live frame can overtake the replay; per-connection sequence
// tracking drops a live frame the history already contained.
func (hs *hubSession) subscribe(ctx context.Context, c *conn, key pentecost.StreamKey, hasSince bool, since uint64, epoch string, first func(pos pentecost.StreamPosition)) error {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.ended {
		return pentecost.Errorf(pentecost.ESESSIONNOTFOUND, "Session not found.")
	}
	st, err := hs.streamLocked(ctx, key)
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	from := since
	if !hasSince {
		from = ^uint64(0)
	}
	frames, pos, err := hs.hub.srv.Broker.History(ctx, st.key, from)
	if err != nil {
		return err
	}
	if first != nil {
		first(pos)
	}
	sub := &streamSub{last: pos.Last, epoch: pos.Epoch}
	if hasSince {
		gap := obj{"type": "streamGap", "sessionId": hs.id, "language": key.Language, "lastSequenceNumber": since, "epoch": pos.Epoch}
		switch {
		case (epoch != "" && epoch != pos.Epoch) || since > pos.Last:
			gap["reason"], gap["firstSequenceNumber"] = "epochChanged", pos.Last+1
			c.send(gap)
			frames = nil
		case since < pos.Last && (pos.First == 0 || since+1 < pos.First):
			first := pos.First
			if first == 0 {
				first = pos.Last + 1
			}
			gap["reason"], gap["firstSequenceNumber"] = "historyExpired", first
			c.send(gap)
		}
		// Audio older than MaxFrameAge is left out as it would be live
		// (deliver): a short reconnect gets everything it missed, a long
		// one the last MaxFrameAge of it, after an audioSkipped.
		srv := hs.hub.srv
		cutoff, skipped := srv.Now().Add(-srv.MaxFrameAge), 0
		for _, f := range frames {
			if f.Kind == pentecost.FrameAudio && srv.MaxFrameAge > 0 && f.Time.Before(cutoff) && !c.paused.Load() {
				sub.noteSkip(f.Seq)
				skipped++
				continue
			}
			if f.Kind == pentecost.FrameAudio {
				st.reportSkip(c, sub)
			}
			if m := st.encode(c, f); m != nil {
				c.enqueue(m)
			}
		}
		if skipped > 0 {
			srv.metrics.staleSkipped.WithLabelValues(skipResume).Add(float64(skipped))
			st.reportSkip(c, sub) // at once if still pending: the next audio may be a while
		}
	}
	st.subs[c] = sub
	return nil
}

// noteSkip adds seq to the connection's run of skipped audio.
func (sub *streamSub) noteSkip(seq uint64) {
	if sub.skipped == 0 {
		sub.skipFrom = seq
	}
	sub.skipTo = seq
	sub.skipped++
}

// reportSkip tells c of its run of skipped audio, if any, and ends the
// run. Called with st.mu held, before c's next audio frame.
func (st *hubStream) reportSkip(c *conn, sub *streamSub) {
	if sub.skipped == 0 {
		return
	}
	c.send(obj{"type": "audioSkipped", "sessionId": st.key.SessionID, "language": st.key.Language, "epoch": sub.epoch,
		"fromSequenceNumber": sub.skipFrom, "toSequenceNumber": sub.skipTo, "frames": sub.skipped, "reason": "stale"})
	sub.skipFrom, sub.skipTo, sub.skipped = 0, 0, 0
}

// skipStale is deliver for an audio frame older than MaxFrameAge (a
// backlog after a broker outage): no subscriber gets it, each records it
// in its run of skipped audio, which the next fresh audio frame reports.
// Frames arrive oldest first, so a burst is skipped up to the first frame
// young enough, and listeners go on live from there.
func (st *hubStream) skipStale(f *pentecost.Frame) {
	st.mu.Lock()
	n := 0
	for c, sub := range st.subs {
		if sub.epoch != f.Epoch {
			st.reportSkip(c, sub) // numbers of the old epoch
			st.epochChanged(c, sub, f)
		}
		if f.Seq <= sub.last {
			continue
		}
		sub.last = f.Seq
		if c.paused.Load() {
			continue // hears no audio anyway
		}
		sub.noteSkip(f.Seq)
		n++
	}
	if n > 0 {
		st.skipping = true
	}
	st.mu.Unlock()
	if n > 0 {
		st.sess.hub.srv.metrics.staleSkipped.WithLabelValues(skipLive).Inc()
		st.sess.hub.warnStale(st.key, f)
	}
}

// warnStale logs, at most once a minute, that audio is being skipped as
// stale. A backlog after an outage ends by itself; a node whose clock
// runs ahead of the others skips every frame, and listeners hear
// silence with no audioSkipped (it comes before fresh audio, which never
// does), so the log is where an operator learns of it.
func (h *hub) warnStale(key pentecost.StreamKey, f *pentecost.Frame) {
	now := h.srv.Now()
	last := h.staleWarned.Load()
	if now.UnixNano()-last < int64(time.Minute) || !h.staleWarned.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	h.srv.Logger.Warn("skipping stale audio", "cause", "a backlog after a broker outage, or this node's clock runs ahead of the node that received it",
		logSession, key.SessionID, "language", key.Language, "age_ms", now.Sub(f.Time).Milliseconds(), "max_ms", h.srv.MaxFrameAge.Milliseconds())
}

// reportSkips tells every subscriber with a run of skipped audio about it.
// Called with st.mu held, before a fresh audio frame is queued.
func (st *hubStream) reportSkips() {
	for c, sub := range st.subs {
		st.reportSkip(c, sub)
	}
	st.skipping = false
}

// deliver is the broker's handler for a stream: it queues f on every local
// subscriber, encoding it at most once per format.
//
// Audio frames are held (queued without waking the listeners' writers)
// until a write can carry as many as the load calls for (loadMeter.frames:
// one below CoalesceAbove deliveries/s, two up to twice that, ...), and
// never once the oldest would wait WriteCoalesce: the next frame, or a
// per-stream timer when none follows, wakes the writers. A loopback write
// costs ~11.5 µs of CPU whatever its size and a listener otherwise gets
// one frame per write. At 4 × 500 two frames per write (and writeAll) give
// p99 31–40 ms at 5.6–6.4 µs per delivery, where the fixed 45 ms hold of
// three frames gave p99 56–88 ms at 4.8–6.0 µs; without coalescing it was
// 6.8–10.1 µs (docs/performance.md, "Adaptive coalescing").
func (st *hubStream) deliver(f *pentecost.Frame) {
	var jm, bm, cm *wsMsg
	srv := st.sess.hub.srv
	// Once per frame, never per listener: how old the audio is, measured
	// from when a server received it (Time, not the SourceTime of the
	// speech a translation carries, which is seconds older by design).
	if f.Kind == pentecost.FrameAudio && srv.MaxFrameAge > 0 && !f.Time.IsZero() && srv.Now().Sub(f.Time) > srv.MaxFrameAge {
		st.skipStale(f)
		return
	}
	st.mu.Lock()
	hold, wasHeld, timeout := false, st.co.held > 0, time.Duration(0)
	if f.Kind == pentecost.FrameAudio {
		if st.skipping {
			st.reportSkips()
		}
		now := time.Now()
		srv.load.add(now, len(st.subs), srv.CoalesceAbove)
		hold, timeout = st.co.audio(now, srv.load.frames(), srv.WriteCoalesce)
	}
	for c, sub := range st.subs {
		if sub.epoch != f.Epoch {
			// The numbering restarted (a shared broker lost its history).
			st.epochChanged(c, sub, f)
		}
		if f.Seq <= sub.last {
			continue
		}
		sub.last = f.Seq
		var m *wsMsg
		switch {
		case f.Kind == pentecost.FrameAudio && c.paused.Load():
			continue
		case f.Kind == pentecost.FrameAudio && c.binary:
			if bm == nil {
				bm = encodeBinaryAudio(f)
			}
			m = bm
		case f.Kind == pentecost.FrameAudio:
			if jm == nil {
				jm = encodeJSONAudio(st.key.SessionID, f)
			}
			m = jm
		case f.Kind == pentecost.FrameCaption:
			if cm == nil {
				cm = st.sess.hub.srv.captionMsg(st.key.SessionID, f)
			}
			m = cm
		default:
			continue
		}
		// Audio waits for kickAll, which writes it on a few goroutines.
		c.enqueueMsg(m, f.Kind == pentecost.FrameAudio)
	}
	switch {
	case hold && wasHeld:
	case hold && st.flush == nil:
		st.flush = time.AfterFunc(timeout, st.release)
	case hold:
		st.flush.Reset(timeout)
	case wasHeld:
		// Also for a caption: the held frames are going out, so the next
		// audio frame starts a new hold.
		st.co.release()
		st.flush.Stop()
		st.kickAll()
	case f.Kind == pentecost.FrameAudio:
		st.kickAll()
	}
	st.mu.Unlock()
	if !f.Time.IsZero() {
		st.sess.hub.srv.metrics.fanout.Observe(time.Since(f.Time).Seconds())
	}
}

// release writes a held frame that no frame followed in time.
func (st *hubStream) release() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.co.release() {
		st.kickAll()
	}
}

// kickAll writes what waits on the stream's connections (writeAll), but
// on those whose writer is still running, which it lets go on. Called with
// st.mu held.
func (st *hubStream) kickAll() {
	var cs []*conn
	for c := range st.subs {
		if c.claim() {
			if cs == nil {
				cs = make([]*conn, 0, len(st.subs))
			}
			cs = append(cs, c)
		}
	}
	if len(cs) > 0 {
		writeAll(cs)
	}
}

// encode encodes f for one connection (history replay).
func (st *hubStream) encode(c *conn, f *pentecost.Frame) *wsMsg {
	switch {
	case f.Kind == pentecost.FrameAudio && c.paused.Load():
		return nil
	case f.Kind == pentecost.FrameAudio && c.binary:
		return encodeBinaryAudio(f)
	case f.Kind == pentecost.FrameAudio:
		return encodeJSONAudio(st.key.SessionID, f)
	case f.Kind == pentecost.FrameCaption:
		return st.sess.hub.srv.captionMsg(st.key.SessionID, f)
	}
	return nil
}

func (s *Server) captionMsg(sessionID string, f *pentecost.Frame) *wsMsg {
	return s.jsonMsg(obj{
		"type": "caption", "sessionId": sessionID, "language": f.Language, "text": f.Text,
		"final": f.Final, "sequenceNumber": f.Seq, "timestamp": pentecost.UnixMilli(f.Time),
	})
}
