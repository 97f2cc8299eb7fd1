package realtime_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
)

// stallBroker is the server's in-memory broker with a gate on audio and
// caption publishes: stalled, they wait (a Redis that hangs rather than
// refuses); failing, they fail at once (a Redis known to be down). Events
// on the control stream pass. A real Redis behind a frozen link is
// cluster.TestStale_SpeakerNodeLinkFrozen's business; this one is cheap.
type stallBroker struct {
	pentecost.Broker
	mu   sync.Mutex
	gate chan struct{} // non-nil: stalled until closed
	fail error
	held chan struct{} // a publish is waiting at the gate
}

func (b *stallBroker) Publish(ctx context.Context, key pentecost.StreamKey, f *pentecost.Frame) error {
	if key.Language != pentecost.ControlLanguage {
		b.mu.Lock()
		gate, fail := b.gate, b.fail
		b.mu.Unlock()
		if gate != nil {
			select {
			case b.held <- struct{}{}:
			default:
			}
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if fail != nil {
			return fail
		}
	}
	return b.Broker.Publish(ctx, key, f)
}

func (b *stallBroker) stall() {
	b.mu.Lock()
	b.gate = make(chan struct{})
	b.mu.Unlock()
}

func (b *stallBroker) release() {
	b.mu.Lock()
	close(b.gate)
	b.gate = nil
	b.mu.Unlock()
}

func (b *stallBroker) failWith(err error) {
	b.mu.Lock()
	b.fail = err
	b.mu.Unlock()
}

// newStallEnv is newEnv with a stallBroker in front of the broker.
func newStallEnv(t *testing.T, configure ...func(*realtime.Server)) (*env, *stallBroker) {
	sb := &stallBroker{held: make(chan struct{}, 1)}
	e := newEnv(t, append(configure, func(s *realtime.Server) {
		sb.Broker = s.Broker
		s.Broker = sb
	})...)
	return e, sb
}

// pacer sends chunk i every 20 ms from chunk 1, as a speaker talking in
// real time, and remembers when it sent each.
type pacer struct {
	mu     sync.Mutex
	sentAt []time.Time // by chunk number; [0] unused
	stop   chan struct{}
	done   chan struct{}
}

func startPacer(t *testing.T, sp *client) *pacer {
	p := &pacer{sentAt: []time.Time{{}}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			p.mu.Lock()
			p.sentAt = append(p.sentAt, time.Now())
			p.mu.Unlock()
			if sp.write(ws.OpBinary, audio(i, 640)) != nil {
				return
			}
		}
	}()
	t.Cleanup(p.halt)
	return p
}

func (p *pacer) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// sent returns how many chunks were sent, and when chunk i was.
func (p *pacer) sent(i int) (int, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.sentAt) - 1
	if i < 1 || i > n {
		return n, time.Time{}
	}
	return n, p.sentAt[i]
}

// TestPublishStall: the broker stops answering a speaker's publishes for
// well over MaxFrameAge while the speaker talks in real time. Its reader
// goes on reading meanwhile (a heartbeat is answered), so each chunk is
// stamped when it arrived; once the broker answers, what waited longer
// than MaxFrameAge is dropped unpublished (metered as publish), the one
// publish that was held is skipped by the hub (live, told with
// audioSkipped), and the listener hears nothing later than the bound after
// the speaker sent it, in order, then live audio. Before, the reader
// published: it stalled, the chunks waited in its socket and came out at
// once stamped as new, seconds late.
func TestPublishStall(t *testing.T) {
	const (
		bound = time.Second
		stall = 5 * bound / 2
		slack = time.Second // a loaded machine, the race detector
	)
	e, sb := newStallEnv(t, func(s *realtime.Server) { s.MaxFrameAge = bound })
	sess := e.createSession("alice")
	l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en&audioFormat=binary")
	l.expect("sessionJoined")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")

	type heard struct {
		chunk int
		seq   uint64
		at    time.Time
	}
	var got []heard
	var skips []msg
	// listen reads the listener's stream until it hears a chunk for which
	// enough holds.
	listen := func(enough func(chunk int) bool) {
		t.Helper()
		for {
			m := l.nextStream()
			if m.typ() == "audioSkipped" {
				skips = append(skips, m)
				continue
			}
			_, seq, _, data, err := realtime.DecodeBinaryAudio(m.data)
			if err != nil {
				t.Fatal(err)
			}
			h := heard{chunk: int(binary.BigEndian.Uint32(data)), seq: seq, at: time.Now()}
			got = append(got, h)
			if enough(h.chunk) {
				return
			}
		}
	}

	p := startPacer(t, sp)
	listen(func(chunk int) bool { return chunk >= 10 })
	sb.stall()
	start := time.Now()
	// Not the fix itself but what it rests on: the reader is free while a
	// publish hangs.
	select {
	case <-sb.held:
	case <-time.After(wait):
		t.Fatal("no publish reached the stalled broker")
	}
	sp.send(map[string]any{"action": "heartbeat"})
	sp.expect("heartbeatAck")
	time.Sleep(stall - time.Since(start)) // the broker's outage
	sb.release()
	back := time.Now()
	// Live again: a chunk sent a bound after the outage is heard, then
	// the last one sent.
	listen(func(chunk int) bool { _, at := p.sent(chunk); return at.After(back.Add(bound)) })
	p.halt()
	if n, _ := p.sent(0); got[len(got)-1].chunk < n {
		listen(func(chunk int) bool { return chunk >= n })
	}

	last := heard{}
	late := 0
	for _, h := range got {
		_, sent := p.sent(h.chunk)
		if d := h.at.Sub(sent); d > bound+slack {
			if late++; late <= 5 {
				t.Errorf("chunk %d (seq %d) heard %v after it was sent", h.chunk, h.seq, d.Round(time.Millisecond))
			}
		}
		if h.chunk <= last.chunk || h.seq <= last.seq {
			t.Errorf("chunk %d (seq %d) heard after chunk %d (seq %d)", h.chunk, h.seq, last.chunk, last.seq)
		}
		last = h
	}
	if late > 5 {
		t.Errorf("%d chunks late in all", late)
	}
	// The chunks of the outage's first (stall - bound) are stale when it
	// ends: 75 of 20 ms; half that allows for ticks a loaded machine missed.
	if dropped, want := e.staleSkipped("publish"), float64((stall-bound)/(20*time.Millisecond)/2); dropped < want {
		t.Errorf("publish skips counted %v, want at least %v", dropped, want)
	}
	// The chunk whose publish was held reached the hub 2.5 s old; the
	// first one published after it may have aged past the bound between
	// the publisher's look and the hub's.
	live := e.staleSkipped("live")
	if live < 1 || live > 2 {
		t.Errorf("live skips counted %v, want 1 (the publish held by the outage) or 2", live)
	}
	if len(skips) != 1 || skips[0].m["frames"] != live || skips[0].m["reason"] != "stale" {
		t.Errorf("audioSkipped events %v, want one of %v frames", skips, live)
	}
	t.Logf("heard %d chunks; dropped %v before publishing", len(got), e.staleSkipped("publish"))
}

// TestPublishErrors: while every publish fails at once (a broker known to
// be down), a speaker is told, but not of every chunk: at most once per
// second; and so is a worker, with its error naming the request.
func TestPublishErrors(t *testing.T) {
	e, sb := newStallEnv(t)
	sess := e.createSession("alice")
	sb.failWith(pentecost.Errorf(pentecost.EUNAVAILABLE, "The shared store is unavailable."))

	// errorsUntil counts c's SERVICE_UNAVAILABLE errors until a message
	// of type typ.
	errorsUntil := func(t *testing.T, c *client, typ string) (n int, first msg) {
		t.Helper()
		for {
			m := c.next()
			switch {
			case m.typ() == typ:
				return n, first
			case m.typ() == "error" && m.m["code"] == pentecost.EUNAVAILABLE:
				if n++; n == 1 {
					first = m
				}
			}
		}
	}

	t.Run("Speaker", func(t *testing.T) {
		sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
		sp.expect("speakerConnected")
		start := time.Now()
		for i := 1; i <= 50; i++ {
			sp.sendBinary(audio(i, 640))
		}
		// Answered once every chunk before it has been through the broker.
		sp.send(map[string]any{"action": "setVolume", "volumeLevel": 0.5})
		n, first := errorsUntil(t, sp, "volumeChanged")
		if most := 1 + int(time.Since(start)/time.Second); n < 1 || n > most {
			t.Fatalf("%d errors for 50 failed chunks, want 1 to %d", n, most)
		}
		if first.m["sessionId"] != sess.ID {
			t.Errorf("error = %v", first.m)
		}
		// Still failing a second later: told again, and never more often
		// than once a second in all.
		told, total := time.Now(), n
		for i := 51; ; i++ {
			sp.sendBinary(audio(i, 640))
			sp.send(map[string]any{"action": "setVolume", "volumeLevel": float64(i%2) / 4}) // a change, so answered
			n, _ := errorsUntil(t, sp, "volumeChanged")
			if total += n; n > 0 {
				break
			}
			if time.Since(told) > wait {
				t.Fatal("no error repeated while publishing still fails")
			}
			time.Sleep(20 * time.Millisecond) // a speaker's pace
		}
		if most := 1 + int(time.Since(start)/time.Second); total > most {
			t.Errorf("%d errors in %v, want at most %d", total, time.Since(start).Round(time.Millisecond), most)
		}
	})

	t.Run("Worker", func(t *testing.T) {
		w := e.dial("role=worker", dialOpts{header: http.Header{"Authorization": {"Bearer worker-secret"}}})
		w.expect("workerConnected")
		w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
		w.expect("languageClaimed")
		for i := 1; i <= 20; i++ {
			w.send(map[string]any{"action": "publishAudio", "sessionId": sess.ID, "targetLanguage": "es",
				"audioData": base64.StdEncoding.EncodeToString(audio(i, 640))})
		}
		m := w.expect("error")
		if m.m["code"] != pentecost.EUNAVAILABLE || m.m["action"] != "publishAudio" || m.m["sessionId"] != sess.ID || m.m["targetLanguage"] != "es" {
			t.Fatalf("error = %v", m.m)
		}
	})
}

// TestPublishStallWorker: a worker's reader, too, goes on while its
// publishes hang, and what it published before the broker stalled for
// longer than MaxFrameAge is dropped, not heard late.
func TestPublishStallWorker(t *testing.T) {
	const bound = 500 * time.Millisecond
	e, sb := newStallEnv(t, func(s *realtime.Server) { s.MaxFrameAge = bound })
	sess := e.createSession("alice")
	es := e.dial("sessionId=" + sess.ID + "&targetLanguage=es")
	es.expect("sessionJoined")
	w := e.dial("role=worker", dialOpts{header: http.Header{"Authorization": {"Bearer worker-secret"}}})
	w.expect("workerConnected")
	w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
	w.expect("languageClaimed")
	es.expect("translationAvailable")
	publish := func(i int) {
		w.send(map[string]any{"action": "publishAudio", "sessionId": sess.ID, "targetLanguage": "es",
			"audioData": base64.StdEncoding.EncodeToString(audio(i, 640))})
	}

	sb.stall()
	start := time.Now()
	for i := 1; i <= 10; i++ {
		publish(i)
	}
	w.send(map[string]any{"action": "heartbeat"})
	w.expect("heartbeatAck")
	time.Sleep(2*bound - time.Since(start)) // the broker's outage
	sb.release()
	publish(11)
	for {
		m := es.nextStream()
		if m.typ() != "audioData" {
			continue // the audioSkipped for the publish that was held
		}
		got, _ := base64.StdEncoding.DecodeString(m.m["audioData"].(string))
		if i := int(binary.BigEndian.Uint32(got)); i != 11 {
			t.Fatalf("heard chunk %d, published before a stall of twice the bound", i)
		}
		break
	}
	if n := e.staleSkipped("publish"); n < 9 {
		t.Errorf("publish skips counted %v, want at least 9", n)
	}
}

// hangLimiter is the server's rate limiter, but heartbeat checks hang until
// gate is closed: a shared store that stopped answering.
type hangLimiter struct {
	pentecost.RateLimiter
	gate chan struct{}
}

func (l *hangLimiter) Allow(ctx context.Context, key string, limit pentecost.Limit) error {
	if strings.HasPrefix(key, "ws-heartbeat:") {
		select {
		case <-l.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return l.RateLimiter.Allow(ctx, key, limit)
}

// TestHeartbeatLimiterHangs: a speaker's heartbeat does not hold its
// reader while the rate limiter hangs, so the audio behind it is read
// (and stamped) on time; the heartbeat is let through, as when the limiter
// fails. Before, the reader waited for the limiter's answer.
func TestHeartbeatLimiterHangs(t *testing.T) {
	hl := &hangLimiter{gate: make(chan struct{})}
	t.Cleanup(func() { close(hl.gate) })
	e := newEnv(t, func(s *realtime.Server) {
		hl.RateLimiter = s.RateLimiter
		s.RateLimiter = hl
	})
	sess := e.createSession("alice")
	l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en&audioFormat=binary")
	l.expect("sessionJoined")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")

	for i := 1; i <= 2; i++ { // the second while the first check still hangs
		sp.send(map[string]any{"action": "heartbeat"})
		sp.sendBinary(audio(i, 640))
		expectAudio(t, l, "listener", uint64(i))
		sp.expect("heartbeatAck")
	}
}
