package client_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/realtime"
)

// clock is a realtime server's clock that the test moves forward, so that
// connections reach RefreshAfter (an hour) when the test says, once.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) refreshAll()    { c.offset.Add(int64(time.Hour)) }
func newSwitchEnv(t *testing.T) (*env, *clock) {
	clk := &clock{}
	e := newEnv(t, func(s *realtime.Server) {
		s.Now, s.RefreshAfter, s.WarningAfter, s.MaxConnDuration = clk.now, time.Hour, 0, 0
	})
	return e, clk
}

// switchGate holds a client's next refresh at a hook point until released.
type switchGate struct {
	point    string
	armed    atomic.Bool
	at       chan struct{} // closed when the switch reached point
	release  chan struct{}
	once     sync.Once
	installs atomic.Int32
	waits    chan struct{} // a Worker request waits
}

// gateSwitch sets client's hook (before Open); the gate closes when the
// test ends, so that nothing stays blocked.
func gateSwitch(t *testing.T, client_ any, point string) *switchGate {
	g := &switchGate{point: point, at: make(chan struct{}), release: make(chan struct{}), waits: make(chan struct{}, 64)}
	client.SetHook(client_, func(p string) {
		switch p {
		case g.point:
			if g.armed.CompareAndSwap(true, false) {
				close(g.at)
				<-g.release
			}
		case "installed":
			g.installs.Add(1)
		case "wait":
			select {
			case g.waits <- struct{}{}:
			default:
			}
		}
	})
	t.Cleanup(g.open)
	return g
}

func (g *switchGate) open() { g.once.Do(func() { close(g.release) }) }

// hold arms the gate, makes every connection refresh and waits until the
// client's switch is held.
func (g *switchGate) hold(t *testing.T, clk *clock) {
	t.Helper()
	g.armed.Store(true)
	clk.refreshAll()
	select {
	case <-g.at:
	case <-time.After(wait):
		t.Fatal("no refresh reached the gate")
	}
}

// TestWorker_RequestsDuringRefresh: subscriptions, claims and their undoing
// made while a refresh prepares the new connection, or is about to switch
// to it, take effect on the connection kept.
func TestWorker_RequestsDuringRefresh(t *testing.T) {
	for _, point := range []string{"prepare", "switch"} {
		t.Run(point, func(t *testing.T) { testRequestsDuringRefresh(t, point) })
	}
}

func testRequestsDuringRefresh(t *testing.T, point string) {
	e, clk := newSwitchEnv(t)
	a, b := e.createSession("alice"), e.createSession("bob")
	spB := openSpeaker(t, e, "bob", b, false)
	_, esA := openListener(t, e, a, "es", false)
	_, esB := openListener(t, e, b, "es", false)
	// Told at join that nobody produces es, before any claim.
	poll(t, "es unavailable", func() bool {
		return esA.eventCount(client.EventTranslationUnavailable) == 1 && esB.eventCount(client.EventTranslationUnavailable) == 1
	})

	w := client.NewWorker(e.URL, workerSecret)
	var mu sync.Mutex
	audio := map[string]int{}
	w.OnAudio = func(f client.Frame) {
		mu.Lock()
		audio[f.SessionID]++
		mu.Unlock()
	}
	g := gateSwitch(t, w, point)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := w.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	if err := w.Subscribe(ctx, a, client.Live); err != nil {
		t.Fatal(err)
	}
	if err := w.Claim(ctx, a, "es"); err != nil {
		t.Fatal(err)
	}
	poll(t, "es available in a", func() bool { return esA.eventCount(client.EventTranslationAvailable) == 1 })

	g.hold(t, clk)
	// Each request either completes (on the old connection) or waits for
	// the switch; start the next one only then.
	reqs := []func() error{
		func() error { return w.Subscribe(ctx, b, client.Live) },
		func() error { return w.Claim(ctx, b, "es") },
		func() error { return w.Unsubscribe(ctx, a) },
		func() error { return w.Release(ctx, a, "es") },
	}
	errs := make(chan error, len(reqs))
	for _, r := range reqs {
		done := make(chan struct{})
		go func() {
			defer close(done)
			errs <- r()
		}()
		select {
		case <-done:
		case <-g.waits:
		case <-ctx.Done():
			t.Fatal("request neither done nor waiting")
		}
	}
	g.open()
	for range reqs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "switch", func() bool { return g.installs.Load() == 2 })

	// Unsubscribed from a on the kept connection: subscribing again works.
	if err := w.Subscribe(ctx, a, client.Live); err != nil {
		t.Fatalf("subscribing again after Unsubscribe: %v", err)
	}
	poll(t, "es released in a", func() bool { return esA.eventCount(client.EventTranslationUnavailable) == 2 })
	send(t, spB, 0, 3)
	poll(t, "b's source audio", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return audio[b] == 3
	})
	for i := range 3 {
		if err := w.PublishAudio(ctx, b, "es", chunk(i, chunkSize(i))); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "es frames in b", func() bool { return esB.frameCount() == 3 })
	esB.checkFrames(t, "es", 0, 3)
}

// TestListener_SettingsBeforeRefresh: a language change or playback pause
// made after the refresh connection joined, but before the switch, applies
// to the connection kept.
func TestListener_SettingsBeforeRefresh(t *testing.T) {
	t.Run("ChangeLanguage", func(t *testing.T) {
		e, clk := newSwitchEnv(t)
		id := e.createSession("alice")
		sp := openSpeaker(t, e, "alice", id, false)
		l, r := newListener(e, id, "es")
		g := gateSwitch(t, l, "switch")
		open(t, l)

		g.hold(t, clk)
		if err := l.ChangeLanguage(context.Background(), "en"); err != nil {
			t.Fatal(err)
		}
		g.open()
		poll(t, "languageChanged", func() bool { return r.eventCount(client.EventLanguageChanged) == 1 })
		poll(t, "switch", func() bool { return g.installs.Load() == 2 })
		send(t, sp, 0, 5)
		pollFrames(t, e, r, 5)
		r.checkFrames(t, "en", 0, 5)
	})
	t.Run("PausePlayback", func(t *testing.T) {
		e, clk := newSwitchEnv(t)
		id := e.createSession("alice")
		l, r := newListener(e, id, "en")
		g := gateSwitch(t, l, "switch")
		open(t, l)

		g.hold(t, clk)
		if err := l.PausePlayback(context.Background()); err != nil {
			t.Fatal(err)
		}
		g.open()
		poll(t, "playbackPaused", func() bool { return r.eventCount(client.EventPlaybackPaused) == 1 })
	})
}

func newListener(e *env, id, lang string) (*client.Listener, *recorder) {
	l := client.NewListener(e.URL, id, lang)
	l.MinBackoff = 20 * time.Millisecond
	r := &recorder{}
	r.attach(l)
	return l, r
}

func open(t *testing.T, l *client.Listener) {
	t.Helper()
	if err := l.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
}

// lossyConn loses everything written once lost is set, and closes: a
// network that fails with data in flight.
type lossyConn struct {
	net.Conn
	lost atomic.Bool
}

func (c *lossyConn) Write(p []byte) (int, error) {
	if c.lost.Load() {
		_ = c.Conn.Close()
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// TestSpeaker_HeldChunksResent: in JSON mode, chunks held during a refresh
// and lost with the new connection are sent again after reconnecting.
func TestSpeaker_HeldChunksResent(t *testing.T) {
	e, clk := newSwitchEnv(t)
	id := e.createSession("alice")
	_, r := openListener(t, e, id, "en", false)

	sp := client.NewSpeaker(e.URL, e.token("alice"))
	sp.SessionID, sp.JSONAudio = id, true
	sp.MinBackoff = 20 * time.Millisecond
	var mu sync.Mutex
	var conns []*lossyConn
	var d net.Dialer
	sp.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		lc := &lossyConn{Conn: c}
		mu.Lock()
		conns = append(conns, lc)
		mu.Unlock()
		return lc, nil
	}}}
	g := gateSwitch(t, sp, "switching")
	if err := sp.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })

	send(t, sp, 0, 10)
	pollFrames(t, e, r, 10)
	g.hold(t, clk)
	send(t, sp, 10, 15) // held for the refresh connection
	mu.Lock()
	if len(conns) != 2 {
		mu.Unlock()
		t.Fatalf("%d connections dialed, want 2", len(conns))
	}
	conns[1].lost.Store(true)
	mu.Unlock()
	g.open()
	send(t, sp, 15, 25)
	pollFrames(t, e, r, 25)
	r.checkFrames(t, "en", 0, 25)
}
