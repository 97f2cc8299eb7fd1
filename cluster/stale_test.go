package cluster_test

import (
	"context"
	"encoding/binary"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/redistest"
)

// Stale audio after an outage (issue 13): the nodes run with the default
// maximum frame age, and no listener may hear a chunk later than that
// (plus slack for a loaded machine) after the speaker sent it.
const (
	maxAge    = realtime.DefaultMaxFrameAge
	lateSlack = time.Second
	outage    = 6 * time.Second // three times the bound
)

// pacedSpeaker sends 20 ms chunks in real time, each starting with its
// number, and remembers when it sent each: the test's clock is the
// listeners' clock, so receive time minus send time is what a listener
// hears as delay.
type pacedSpeaker struct {
	sp     *client.Speaker
	mu     sync.Mutex
	sentAt []time.Time // by chunk number
	stop   context.CancelFunc
	done   chan struct{}
}

func startPaced(t *testing.T, sp *client.Speaker) *pacedSpeaker {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pacedSpeaker{sp: sp, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := uint32(0); ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			chunk := make([]byte, 640)
			binary.BigEndian.PutUint32(chunk, i)
			p.mu.Lock()
			p.sentAt = append(p.sentAt, time.Now())
			p.mu.Unlock()
			// Refused chunks (Redis down) are the server's to drop.
			_ = sp.SendAudio(ctx, chunk)
		}
	}()
	t.Cleanup(p.halt)
	return p
}

func (p *pacedSpeaker) halt() { p.stop(); <-p.done }

func (p *pacedSpeaker) sent(chunk uint32) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(chunk) >= len(p.sentAt) {
		return time.Time{}
	}
	return p.sentAt[chunk]
}

func (p *pacedSpeaker) count() uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return uint32(len(p.sentAt))
}

// arrival is one chunk as a listener got it.
type arrival struct {
	chunk uint32
	seq   uint64
	ts    time.Time // the frame's timestamp
	at    time.Time
}

// timedListener records what a listener hears and when, and its
// audioSkipped events.
type timedListener struct {
	name    string
	l       *client.Listener
	mu      sync.Mutex
	got     []arrival
	skipped []client.Event
}

func listenTimed(t *testing.T, name, url, id string) *timedListener {
	t.Helper()
	tl := &timedListener{name: name}
	l := client.NewListener(url, id, "en")
	l.Binary = true
	l.MinBackoff, l.MaxBackoff = 50*time.Millisecond, 500*time.Millisecond
	l.OnAudio = func(f client.Frame) {
		a := arrival{chunk: binary.BigEndian.Uint32(f.Data), seq: f.Seq, ts: f.Timestamp, at: time.Now()}
		tl.mu.Lock()
		tl.got = append(tl.got, a)
		tl.mu.Unlock()
	}
	l.OnEvent = func(e client.Event) {
		if e.Type == client.EventAudioSkipped {
			tl.mu.Lock()
			tl.skipped = append(tl.skipped, e)
			tl.mu.Unlock()
		}
	}
	if err := l.Open(ctx(t, 10*time.Second)); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { l.Close() })
	tl.l = l
	return tl
}

func (tl *timedListener) last() arrival {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.got) == 0 {
		return arrival{}
	}
	return tl.got[len(tl.got)-1]
}

func (tl *timedListener) heard() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return len(tl.got)
}

// arrivals returns a copy of what the listener got so far: it is still
// receiving (a resume's replay, the last frames in flight).
func (tl *timedListener) arrivals() []arrival {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]arrival(nil), tl.got...)
}

func (tl *timedListener) skips() []client.Event {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]client.Event(nil), tl.skipped...)
}

// heardSince reports whether the listener got a chunk sent after t.
func (tl *timedListener) heardSince(p *pacedSpeaker, t time.Time) bool {
	a := tl.last()
	return a.at != time.Time{} && p.sent(a.chunk).After(t)
}

// checkLateness fails for every chunk the listener got later than the
// bound plus slack after the speaker sent it, or (the server's own view)
// after the frame's timestamp, and returns the largest delay.
func (tl *timedListener) checkLateness(t *testing.T, p *pacedSpeaker) time.Duration {
	t.Helper()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var worst time.Duration
	bad := 0
	for _, a := range tl.got {
		late := a.at.Sub(p.sent(a.chunk))
		worst = max(worst, late)
		if late > maxAge+lateSlack || a.at.Sub(a.ts) > maxAge+lateSlack {
			if bad++; bad <= 5 {
				t.Errorf("%s heard chunk %d (seq %d) %v after it was sent, %v after its timestamp",
					tl.name, a.chunk, a.seq, late.Round(time.Millisecond), a.at.Sub(a.ts).Round(time.Millisecond))
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d chunks late in all", tl.name, bad)
	}
	return worst
}

// gate is a TCP forwarder that a test can freeze (bytes wait, connections
// stay up: a stalled network) or cut (connections dropped, new ones closed
// at once: a network gone), and then restore.
type gate struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cond   *sync.Cond
	frozen bool
	cut    bool
	conns  map[net.Conn]struct{}
}

func startGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	g.cond = sync.NewCond(&g.mu)
	go g.serve()
	t.Cleanup(g.close)
	return g
}

func (g *gate) addr() string { return g.ln.Addr().String() }

func (g *gate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		go g.forward(c)
	}
}

func (g *gate) forward(c net.Conn) {
	g.mu.Lock()
	if g.cut || g.conns == nil {
		g.mu.Unlock()
		c.Close()
		return
	}
	g.conns[c] = struct{}{}
	g.mu.Unlock()
	b, err := net.DialTimeout("tcp", g.target, time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !g.track(b) {
		c.Close()
		b.Close()
		return
	}
	done := make(chan struct{}, 2)
	go g.pipe(b, c, done)
	go g.pipe(c, b, done)
	<-done
	c.Close()
	b.Close()
	<-done
	g.mu.Lock()
	delete(g.conns, c)
	delete(g.conns, b)
	g.mu.Unlock()
}

func (g *gate) track(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cut || g.conns == nil {
		return false
	}
	g.conns[c] = struct{}{}
	return true
}

// pipe copies src to dst, holding each read while the gate is frozen.
func (g *gate) pipe(dst, src net.Conn, done chan<- struct{}) {
	defer func() { done <- struct{}{} }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			g.mu.Lock()
			for g.frozen {
				g.cond.Wait()
			}
			g.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (g *gate) freeze() {
	g.mu.Lock()
	g.frozen = true
	g.mu.Unlock()
}

// drop closes every connection and refuses new ones until restore.
func (g *gate) drop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cut = true
	for c := range g.conns {
		c.Close()
	}
}

func (g *gate) restore() {
	g.mu.Lock()
	g.frozen, g.cut = false, false
	g.cond.Broadcast()
	g.mu.Unlock()
}

func (g *gate) close() {
	g.ln.Close()
	g.mu.Lock()
	for c := range g.conns {
		c.Close()
	}
	g.conns = nil
	g.frozen = false
	g.cond.Broadcast()
	g.mu.Unlock()
}

// metricValue reads a counter of a node as a number (0 when missing).
func metricValue(t *testing.T, n *node, name string) float64 {
	t.Helper()
	v := metric(t, n, name)
	if v == "(missing)" {
		t.Fatalf("%s: no %s", n.name, name)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		t.Fatalf("%s: %s = %q", n.name, name, v)
	}
	return f
}

const (
	staleLive   = `pentecost_stale_frames_skipped_total{delivery="live"}`
	staleResume = `pentecost_stale_frames_skipped_total{delivery="resume"}`
)

// TestStale_RedisOutage is issue 13's attack: Redis stops for three times
// the maximum frame age under a speaker talking in real time. Listeners
// that stay connected (on the speaker's node and another) hear nothing
// late once Redis is back: before, the chunks the speaker sent during the
// outage queued up behind publishes that took go-redis's retries to fail,
// and came out as one burst seconds old. A listener whose own network
// dropped just before the outage resumes after it without a replay of
// what is now stale: it is told with audioSkipped (through the Go
// client), the node counts the frames, and it goes on live.
func TestStale_RedisOutage(t *testing.T) {
	srv := redistest.StartPersistent(t) // the history survives, as in production
	token := mintToken(t, srv.URL(), "speaker")
	a := startNode(t, "A", srv.URL())
	b := startNode(t, "B", srv.URL())
	sp := speak(t, a.url, token)
	id := sp.Session()
	onA := listenTimed(t, "listener on A", a.url, id)
	onB := listenTimed(t, "listener on B", b.url, id)
	lan := startGate(t, strings.TrimPrefix(b.url, "http://"))
	resumer := listenTimed(t, "listener on B that drops", "http://"+lan.addr(), id)

	p := startPaced(t, sp)
	waitFor(t, 10*time.Second, "a second of audio everywhere", func() bool {
		return onA.heard() >= 50 && onB.heard() >= 50 && resumer.heard() >= 50
	})
	// The resumer's network goes a little before Redis does: the frames
	// it misses meanwhile stay in the history, and are stale by the time
	// it is back.
	lan.drop()
	missed := onB.last().seq + 10
	waitFor(t, 10*time.Second, "audio published after the resumer left", func() bool { return onB.last().seq >= missed })
	srv.Stop()
	time.Sleep(outage) // the outage itself, while the speaker talks on
	srv.Restart()
	back := time.Now()
	for _, n := range []*node{a, b} {
		waitFor(t, 10*time.Second, n.name+" ready again", n.ready)
	}
	_, dropped := resumer.l.Position() // where it resumes from
	lan.restore()
	// Long enough after Redis is back for any burst to have come.
	for _, tl := range []*timedListener{onA, onB, resumer} {
		waitFor(t, 15*time.Second, tl.name+" hearing live audio again", func() bool {
			return tl.heardSince(p, back.Add(maxAge))
		})
	}
	p.halt()

	for _, tl := range []*timedListener{onA, onB, resumer} {
		worst := tl.checkLateness(t, p)
		t.Logf("%s: %d chunks of %d sent, heard at most %v after sending; skips %+v",
			tl.name, tl.heard(), p.count(), worst.Round(time.Millisecond), tl.skips())
	}
	skips := resumer.skips()
	if len(skips) == 0 {
		t.Fatalf("the resumed listener was not told of the stale audio it missed (back %v after it left; history holds 10 s)",
			time.Since(back)+outage)
	}
	s := skips[0]
	if s.Reason != "stale" || s.FromSequenceNumber != dropped+1 || s.ToSequenceNumber < s.FromSequenceNumber || s.Frames < 1 ||
		uint64(s.Frames) > s.ToSequenceNumber-s.FromSequenceNumber+1 || s.SessionID != id || s.Epoch == "" {
		t.Errorf("audioSkipped %+v, want reason stale from %d", s, dropped+1)
	}
	for _, a := range resumer.arrivals() {
		if a.seq >= s.FromSequenceNumber && a.seq <= s.ToSequenceNumber {
			t.Errorf("the resumed listener heard seq %d, which it was told was skipped", a.seq)
		}
	}
	if got := metricValue(t, b, staleResume); got < float64(s.Frames) {
		t.Errorf("%s on B = %v, want at least the %d frames skipped", staleResume, got, s.Frames)
	}
}

// TestStale_NodeCutOffFromRedis stalls one node's network to Redis (not
// Redis itself) for three times the maximum frame age while the speaker's
// node goes on publishing: when it flows again the node receives the
// backlog, stamped when the speaker's node received each chunk. Its
// listener skips what is stale, is told, hears the rest within the bound
// and goes on live; the node counts what it skipped. The listener on the
// speaker's node notices nothing.
func TestStale_NodeCutOffFromRedis(t *testing.T) {
	srv := redistest.Start(t)
	token := mintToken(t, srv.URL(), "speaker")
	link := startGate(t, srv.Addr())
	a := startNode(t, "A", srv.URL())
	b := startNode(t, "B", "redis://"+link.addr()+"/0")
	sp := speak(t, a.url, token)
	id := sp.Session()
	onA := listenTimed(t, "listener on A", a.url, id)
	onB := listenTimed(t, "listener on B", b.url, id)

	p := startPaced(t, sp)
	waitFor(t, 10*time.Second, "a second of audio on A and B", func() bool { return onA.heard() >= 50 && onB.heard() >= 50 })
	before := metricValue(t, b, staleLive)
	link.freeze()
	time.Sleep(outage) // B hears nothing from Redis meanwhile
	link.restore()
	back := time.Now()
	waitFor(t, 15*time.Second, "audio on B after the stall", func() bool { return onB.heardSince(p, back.Add(maxAge)) })
	p.halt()

	for _, tl := range []*timedListener{onA, onB} {
		worst := tl.checkLateness(t, p)
		t.Logf("%s: %d chunks of %d sent, heard at most %v after sending; skips %+v",
			tl.name, tl.heard(), p.count(), worst.Round(time.Millisecond), tl.skips())
	}
	if s := onA.skips(); len(s) != 0 {
		t.Errorf("listener on A, whose node kept its link, was told of skips %+v", s)
	}
	skips := onB.skips()
	if len(skips) == 0 {
		t.Fatal("listener on B was not told of the stale audio skipped")
	}
	frames := 0
	for _, s := range skips {
		if s.Reason != "stale" || s.Frames < 1 || s.ToSequenceNumber < s.FromSequenceNumber {
			t.Errorf("audioSkipped %+v", s)
		}
		frames += s.Frames
	}
	// The chunks of the stall's first (outage - bound) are stale however
	// soon the node catches up: 200 of 20 ms; half of that allows for
	// ticks a loaded machine's speaker missed.
	if min := int((outage - maxAge) / (20 * time.Millisecond) / 2); frames < min {
		t.Errorf("listener on B told of %d skipped frames, want at least %d", frames, min)
	}
	if got := metricValue(t, b, staleLive) - before; got < float64(frames) {
		t.Errorf("%s on B grew by %v, want at least the %d frames its listener was told of", staleLive, got, frames)
	}
	if got := metricValue(t, a, staleLive); got != 0 {
		t.Errorf("%s on A = %v, want 0", staleLive, got)
	}
}
