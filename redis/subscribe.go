package redis

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/pentecost/pentecost"
	goredis "github.com/redis/go-redis/v9"
)

// subGroup is one Pub/Sub connection and the goroutine that reads it. A
// single Redis or Sentinel setup uses one group for every stream; a cluster
// uses one per session, since a sharded subscription lives on the node that
// owns its slot.
type subGroup struct {
	key  string
	ps   *goredis.PubSub
	n    int // streams subscribed through it
	done chan struct{}
}

// subStream is this node's subscription to one stream, shared by its
// local handlers. epoch and last are what was delivered so far; only the
// group's goroutine touches them once the stream is active.
type subStream struct {
	key      pentecost.StreamKey
	channel  string
	group    *subGroup
	handlers []*pentecost.FrameHandler // copied on change

	ready  chan struct{} // closed once active or failed
	err    error         // why it failed, set before ready closes
	active bool

	epoch string
	last  uint64
}

// Subscribe implements pentecost.Broker. The first handler of a stream on
// this node subscribes to its channel and waits until Redis confirms; the
// stream's position at that moment is the start: every frame published
// after Subscribe returns reaches h, once and in Seq order. If the
// connection to Redis drops, it is re-established and resubscribed in the
// background, and the frames published meanwhile are delivered from the
// history before later ones (those already trimmed from the history are
// skipped). If Redis lost the stream, later frames carry a new Epoch and
// start again at Seq 1. Handlers run on the node's reader goroutine: they
// must not block, and must not call Subscribe (which waits for that reader).
func (b *Broker) Subscribe(ctx context.Context, key pentecost.StreamKey, h pentecost.FrameHandler) (func(), error) {
	if key.SessionID == "" || h == nil {
		return nil, pentecost.Errorf(pentecost.EVALIDATIONFIELD, "A session and a handler are required.")
	}
	ref := &h
	channel := b.streamKeys(key)[2]

	b.opMu.Lock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.opMu.Unlock()
		return nil, pentecost.Errorf(pentecost.EUNAVAILABLE, unavailableMessage)
	}
	st := b.streams[channel]
	fresh := st == nil
	if fresh {
		st = &subStream{key: key, channel: channel, ready: make(chan struct{})}
		b.streams[channel] = st
	}
	st.handlers = append(slices.Clip(st.handlers), ref)
	var g *subGroup
	newGroup := false
	if fresh {
		gk := ""
		if b.db.cluster {
			gk = key.SessionID
		}
		if g = b.groups[gk]; g == nil {
			g = &subGroup{key: gk, done: make(chan struct{})}
			b.groups[gk] = g
			newGroup = true
		}
		st.group = g
		g.n++
	}
	b.mu.Unlock()
	if newGroup {
		// No connection yet: the first SSUBSCRIBE below makes it, to the
		// node that owns the channel's slot.
		g.ps = b.db.client.SSubscribe(b.ctx)
	}
	if fresh {
		if err := g.ps.SSubscribe(ctx, channel); err != nil {
			b.failLocked(st, err)
		}
	}
	if newGroup {
		go b.receive(g, g.ps.ChannelWithSubscriptions(goredis.WithChannelSize(1024)))
	}
	b.opMu.Unlock()

	unsubscribe := b.unsubscriber(st, ref)
	timer := time.NewTimer(b.subscribeTimeout())
	defer timer.Stop()
	select {
	case <-st.ready:
	case <-ctx.Done():
		unsubscribe()
		return nil, ctx.Err()
	case <-timer.C:
		b.opMu.Lock()
		b.failLocked(st, errors.New("no subscription confirmation in time"))
		b.opMu.Unlock()
	}
	if st.err != nil {
		unsubscribe()
		return nil, b.db.storeError(ctx, "subscribe", st.err)
	}
	return unsubscribe, nil
}

func (b *Broker) subscribeTimeout() time.Duration {
	if b.SubscribeTimeout <= 0 {
		return DefaultSubscribeTimeout
	}
	return b.SubscribeTimeout
}

// failLocked gives up on a stream that could not be subscribed: waiters
// get err, and the next Subscribe starts afresh. Called with b.opMu held.
func (b *Broker) failLocked(st *subStream, err error) {
	b.mu.Lock()
	select {
	case <-st.ready:
		b.mu.Unlock()
		return // confirmed meanwhile, or already failed
	default:
	}
	st.err = err
	close(st.ready)
	g, last := b.detachLocked(st)
	b.mu.Unlock()
	b.release(g, st.channel, last)
}

// detachLocked removes st from the broker's maps and reports whether its
// group has no stream left. Called with b.mu held.
func (b *Broker) detachLocked(st *subStream) (*subGroup, bool) {
	if b.streams[st.channel] != st {
		return nil, false
	}
	delete(b.streams, st.channel)
	g := st.group
	g.n--
	last := g.n == 0 && g.key != "" // the single group of a non-cluster setup stays
	if last {
		delete(b.groups, g.key)
	}
	return g, last
}

// release unsubscribes a channel, and closes its group when it was the
// group's last. Called with b.opMu held.
func (b *Broker) release(g *subGroup, channel string, last bool) {
	if g == nil {
		return
	}
	if last {
		_ = g.ps.Close()
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.subscribeTimeout())
	defer cancel()
	// On error the channel is still forgotten by the client, so it is not
	// resubscribed when the connection comes back.
	_ = g.ps.SUnsubscribe(ctx, channel)
}

// unsubscriber returns the idempotent function that removes a handler.
func (b *Broker) unsubscriber(s *subStream, ref *pentecost.FrameHandler) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.opMu.Lock()
			defer b.opMu.Unlock()
			b.mu.Lock()
			s.handlers = slices.DeleteFunc(slices.Clone(s.handlers), func(x *pentecost.FrameHandler) bool { return x == ref })
			var g *subGroup
			var last bool
			if len(s.handlers) == 0 {
				g, last = b.detachLocked(s)
			}
			b.mu.Unlock()
			b.release(g, s.channel, last)
		})
	}
}

// receive reads one group's connection until it is closed. After Close it
// still drains what the client had buffered.
func (b *Broker) receive(g *subGroup, msgs <-chan any) {
	defer close(g.done)
	for m := range msgs {
		switch m := m.(type) {
		case *goredis.Subscription:
			if m.Kind == "ssubscribe" {
				b.confirmed(g, m.Channel)
			}
		case *goredis.Message:
			b.message(g, m.Channel, m.Payload)
		}
	}
}

// stream returns the subscription of a channel if g reads it. A closed
// group's buffered items may name a channel subscribed again since, through
// another group: that subscription is its reader's alone.
func (b *Broker) stream(g *subGroup, channel string) *subStream {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.streams[channel]; s != nil && s.group == g {
		return s
	}
	return nil
}

// confirmed handles Redis's confirmation of a subscription: the first one
// fixes where the stream starts; a later one follows a reconnection, after
// which what was published meanwhile is caught up from the history.
func (b *Broker) confirmed(g *subGroup, channel string) {
	s := b.stream(g, channel)
	if s == nil {
		return
	}
	select {
	case <-s.ready:
		if s.err == nil {
			b.catchUp(s, 0, "")
		}
		return
	default:
	}
	ctx, cancel := context.WithTimeout(b.ctx, b.subscribeTimeout())
	pos, err := b.Position(ctx, s.key)
	cancel()
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-s.ready: // gave up meanwhile
		return
	default:
	}
	if err != nil {
		s.err = err
		close(s.ready)
		return // the waiting Subscribe unsubscribes
	}
	s.epoch, s.last, s.active = pos.Epoch, pos.Last, true
	close(s.ready)
}

// message delivers one published frame, after any it finds missing.
func (b *Broker) message(g *subGroup, channel, payload string) {
	s := b.stream(g, channel)
	if s == nil || !s.active {
		return
	}
	f, err := decodeMessage(payload)
	if err != nil {
		b.db.Logger.Error("undecodable frame", logKeyStream, s.key.String(), logKeyError, err)
		return
	}
	switch {
	case f.Epoch == s.epoch && f.Seq <= s.last:
		return // delivered already, from the history
	case f.Epoch != s.epoch || f.Seq > s.last+1:
		b.catchUp(s, f.Seq, f.Epoch)
		if f.Epoch == s.epoch && f.Seq <= s.last {
			return
		}
	}
	b.deliver(s, f)
}

// catchUp delivers the frames held in the history that s has not seen:
// before frame upTo of epoch (when upTo > 0), or all of them (after a
// reconnection). A new epoch is followed from its start.
func (b *Broker) catchUp(s *subStream, upTo uint64, epoch string) {
	ctx, cancel := context.WithTimeout(b.ctx, b.subscribeTimeout())
	defer cancel()
	since := s.last
	if upTo > 0 && epoch != s.epoch {
		since = 0
	}
	frames, pos, err := b.History(ctx, s.key, since)
	if err != nil {
		b.db.Logger.Warn("stream catch-up failed", logKeyStream, s.key.String(), logKeyError, err)
		return
	}
	if upTo > 0 && pos.Epoch != epoch {
		return // yet another numbering: deliver the frame as it is
	}
	if pos.Epoch != s.epoch && since != 0 {
		// Redis lost the stream while we were away: follow the new one
		// from its start.
		if frames, pos, err = b.History(ctx, s.key, 0); err != nil || pos.Epoch == s.epoch {
			return
		}
	}
	if pos.Epoch != s.epoch {
		s.epoch, s.last = pos.Epoch, 0
	}
	for _, f := range frames {
		if upTo > 0 && f.Seq >= upTo {
			break
		}
		if f.Seq > s.last {
			b.deliver(s, f)
		}
	}
}

// deliver hands f to every handler of s and records it as seen.
func (b *Broker) deliver(s *subStream, f *pentecost.Frame) {
	b.mu.Lock()
	handlers := s.handlers
	b.mu.Unlock()
	s.epoch, s.last = f.Epoch, f.Seq
	for _, h := range handlers {
		(*h)(f)
	}
}

// Close ends every subscription and the goroutines reading them.
func (b *Broker) Close() error {
	b.opMu.Lock()
	defer b.opMu.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.cancel()
	groups := make([]*subGroup, 0, len(b.groups))
	for _, g := range b.groups {
		groups = append(groups, g)
	}
	clear(b.groups)
	clear(b.streams)
	b.mu.Unlock()
	for _, g := range groups {
		_ = g.ps.Close()
		<-g.done
	}
	return nil
}
