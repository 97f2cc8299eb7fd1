package cluster_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/redistest"
)

// Presence timing of the test nodes (baseEnv): entries expire after 3 s
// and are refreshed every second.
const (
	presenceTTL     = 3 * time.Second
	presenceRefresh = presenceTTL / 3
	// countBound is how long after a crash counts must be exact again: the
	// expiry, plus a refresh for a node to notice, plus one for slack.
	countBound = presenceTTL + 2*presenceRefresh + time.Second
)

// heard records what a listener delivered.
type heard struct {
	mu     sync.Mutex
	chunks []uint32 // the speaker's chunk numbers, in delivery order
	gaps   []client.Event
	joins  []client.Joined
}

func (h *heard) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.chunks)
}

// inOrder fails unless the listener delivered chunks from..to-1 exactly,
// in order, each once.
func (h *heard) inOrder(t *testing.T, name string, from, to int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.chunks) != to-from {
		t.Fatalf("%s heard %d chunks, want %d", name, len(h.chunks), to-from)
	}
	for i, c := range h.chunks {
		if int(c) != from+i {
			t.Fatalf("%s: chunk #%d is %d, want %d (heard %v)", name, i, c, from+i, h.chunks)
		}
	}
}

// listen joins session id in English at url and records what it hears.
func listen(t *testing.T, url, id string) (*client.Listener, *heard) {
	t.Helper()
	h := &heard{}
	l := client.NewListener(url, id, "en")
	l.Binary = true
	l.MinBackoff, l.MaxBackoff = 50*time.Millisecond, 500*time.Millisecond
	l.OnAudio = func(f client.Frame) {
		h.mu.Lock()
		h.chunks = append(h.chunks, binary.BigEndian.Uint32(f.Data))
		h.mu.Unlock()
	}
	l.OnEvent = func(e client.Event) {
		if e.Type == client.EventStreamGap {
			h.mu.Lock()
			h.gaps = append(h.gaps, e)
			h.mu.Unlock()
		}
	}
	l.OnJoined = func(j client.Joined) {
		h.mu.Lock()
		h.joins = append(h.joins, j)
		h.mu.Unlock()
	}
	if err := l.Open(ctx(t, 10*time.Second)); err != nil {
		t.Fatalf("listener on %s: %v", url, err)
	}
	t.Cleanup(func() { l.Close() })
	return l, h
}

// speak opens a speaker creating an English session at url.
func speak(t *testing.T, url, token string) *client.Speaker {
	t.Helper()
	sp := client.NewSpeaker(url, token)
	sp.SourceLanguage = "en"
	sp.MinBackoff, sp.MaxBackoff = 50*time.Millisecond, 500*time.Millisecond
	if err := sp.Open(ctx(t, 10*time.Second)); err != nil {
		t.Fatalf("speaker on %s: %v", url, err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// send sends chunks from..to-1, each 20 ms of audio starting with its number.
func send(t *testing.T, sp *client.Speaker, from, to int) {
	t.Helper()
	c := ctx(t, 10*time.Second)
	for i := from; i < to; i++ {
		chunk := make([]byte, 640)
		binary.BigEndian.PutUint32(chunk, uint32(i))
		if err := sp.SendAudio(c, chunk); err != nil {
			t.Fatalf("send chunk %d: %v", i, err)
		}
	}
}

// TestCluster runs three nodes on one Redis: speakers on A, listeners on B
// and C, a kill -9 of B.
func TestCluster(t *testing.T) {
	srv := redistest.Start(t)
	token := mintToken(t, srv.URL(), "speaker")
	a := startNode(t, "A", srv.URL())
	b := startNode(t, "B", srv.URL())
	c := startNode(t, "C", srv.URL())
	nodes := []*node{a, b, c}

	t.Run("TokenFromCLIEveryNode", func(t *testing.T) {
		for _, n := range nodes {
			if status, code := do(t, "GET", n.url+"/sessions", token, nil, nil); status != http.StatusOK {
				t.Errorf("GET /sessions on %s with the CLI's token = %d %s", n.name, status, code)
			}
			if status, _ := do(t, "GET", n.url+"/sessions", token+"x", nil, nil); status != http.StatusUnauthorized {
				t.Errorf("GET /sessions on %s with a forged token = %d, want 401", n.name, status)
			}
		}
	})

	t.Run("LoginLimitAcrossNodes", func(t *testing.T) {
		// 3 attempts a minute per IP: two on A and one on B use them up,
		// so B refuses the fourth although it saw only one.
		wrong := map[string]string{"username": "speaker", "password": "wrong password"}
		for i, n := range []*node{a, a, b} {
			if status, _ := do(t, "POST", n.url+"/auth/login", "", wrong, nil); status != http.StatusUnauthorized {
				t.Fatalf("attempt %d on %s = %d, want 401", i+1, n.name, status)
			}
		}
		for _, n := range []*node{b, c} {
			if status, code := do(t, "POST", n.url+"/auth/login", "", wrong, nil); status != http.StatusTooManyRequests || code != "RATE_LIMIT_EXCEEDED" {
				t.Errorf("fourth attempt on %s = %d %s, want 429 RATE_LIMIT_EXCEEDED", n.name, status, code)
			}
		}
	})

	t.Run("FanOutThenDeleteEverywhere", func(t *testing.T) {
		sp := speak(t, a.url, token)
		id := sp.Session()
		lb, hb := listen(t, b.url, id)
		lc, hc := listen(t, c.url, id)
		const n = 200
		send(t, sp, 0, n)
		waitFor(t, 10*time.Second, "every frame on B and C", func() bool { return hb.count() == n && hc.count() == n })
		hb.inOrder(t, "listener on B", 0, n)
		hc.inOrder(t, "listener on C", 0, n)
		waitFor(t, 5*time.Second, "2 listeners stored", func() bool { return getSession(t, a, id).ListenerCount == 2 })

		if status, code := do(t, "DELETE", c.url+"/sessions/"+id, token, nil, nil); status != http.StatusNoContent {
			t.Fatalf("DELETE on C = %d %s", status, code)
		}
		for name, done := range map[string]<-chan struct{}{"speaker on A": sp.Done(), "listener on B": lb.Done(), "listener on C": lc.Done()} {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("%s still connected 5 s after DELETE on C", name)
			}
		}
		for _, err := range []error{sp.Err(), lb.Err(), lc.Err()} {
			if !errors.Is(err, client.ErrSessionEnded) {
				t.Errorf("client stopped with %v, want ErrSessionEnded", err)
			}
		}
		for _, n := range nodes {
			if s := getSession(t, n, id); s.Status != "ended" || s.ListenerCount != 0 {
				t.Errorf("session on %s after DELETE = %+v", n.name, s)
			}
		}
	})

	t.Run("KillNodeListenerResumes", func(t *testing.T) {
		sp := speak(t, a.url, token)
		id := sp.Session()
		lb := startProxy(t, b, c) // a balancer: B while it lives, then C
		_, hb := listen(t, lb.url(), id)
		_, hc := listen(t, c.url, id)
		gone, _ := listen(t, b.url, id) // on B without a balancer: lost with it
		send(t, sp, 0, 50)
		waitFor(t, 10*time.Second, "the first frames", func() bool { return hb.count() == 50 && hc.count() == 50 })
		waitFor(t, 5*time.Second, "3 listeners stored", func() bool { return getSession(t, a, id).ListenerCount == 3 })

		b.kill()
		killed := time.Now()
		gone.Close() // it would only knock at B's closed port
		// The speaker goes on while B's listener finds C.
		send(t, sp, 50, 300)
		waitFor(t, 10*time.Second, "every frame after the crash", func() bool { return hb.count() == 300 && hc.count() == 300 })
		hb.inOrder(t, "listener moved from B to C", 0, 300)
		hc.inOrder(t, "listener on C", 0, 300)
		hb.mu.Lock()
		gaps, joins := len(hb.gaps), len(hb.joins)
		hb.mu.Unlock()
		if gaps != 0 || joins != 2 {
			t.Fatalf("moved listener: %d gaps, %d joins; want none and 2", gaps, joins)
		}

		// B's two entries count until they expire: 3 or 4 until then (the
		// moved listener counts again on C), never fewer than the 2 there.
		var exact time.Duration
		waitFor(t, countBound, "exact counts after kill -9", func() bool {
			got := getSession(t, a, id).ListenerCount
			if got < 2 {
				t.Fatalf("count %d below the 2 listeners connected", got)
			}
			exact = time.Since(killed)
			return got == 2
		})
		t.Logf("counts exact %v after kill -9 (presence TTL %v, refresh %v)", exact.Round(10*time.Millisecond), presenceTTL, presenceRefresh)
		for _, n := range []*node{a, c} {
			if got := getSession(t, n, id).ListenerCount; got != 2 {
				t.Errorf("count on %s = %d, want 2", n.name, got)
			}
		}
	})
}

// TestCluster_RedisRestart stops Redis mid-stream and starts it again (with
// its append-only file, as in production): while it is down the nodes are
// not ready and refuse new sessions and joins with 503 / SERVICE_UNAVAILABLE;
// once it is back they recover by themselves and audio flows with no gap.
func TestCluster_RedisRestart(t *testing.T) {
	srv := redistest.StartPersistent(t)
	token := mintToken(t, srv.URL(), "speaker")
	a := startNode(t, "A", srv.URL())
	b := startNode(t, "B", srv.URL())

	sp := speak(t, a.url, token)
	id := sp.Session()
	_, hb := listen(t, b.url, id)
	send(t, sp, 0, 20)
	waitFor(t, 10*time.Second, "frames before the outage", func() bool { return hb.count() == 20 })

	srv.Stop()
	for _, n := range []*node{a, b} {
		if n.ready() {
			t.Errorf("%s ready while Redis is down", n.name)
		}
		if up := metric(t, n, "pentecost_redis_up"); up != "0" {
			t.Errorf("pentecost_redis_up on %s = %s while Redis is down", n.name, up)
		}
	}
	if status, code := do(t, "POST", a.url+"/sessions", token, map[string]string{"sourceLanguage": "en"}, nil); status != http.StatusServiceUnavailable || code != "SERVICE_UNAVAILABLE" {
		t.Errorf("POST /sessions while Redis is down = %d %s, want 503 SERVICE_UNAVAILABLE", status, code)
	}
	l := client.NewListener(b.url, id, "en")
	err := l.Open(ctx(t, 10*time.Second))
	var ce *client.CloseError
	if !errors.As(err, &ce) || ce.Err == nil || ce.Err.Code != "SERVICE_UNAVAILABLE" || ce.Code != client.CloseTryAgain {
		t.Errorf("join while Redis is down: %v, want SERVICE_UNAVAILABLE and 1013", err)
	}
	if err == nil {
		l.Close()
	}

	srv.Restart()
	back := time.Now()
	for _, n := range []*node{a, b} {
		waitFor(t, 10*time.Second, n.name+" ready again", n.ready)
		if up := metric(t, n, "pentecost_redis_up"); up != "1" {
			t.Errorf("pentecost_redis_up on %s = %s after Redis came back", n.name, up)
		}
	}
	// The existing listener hears what follows, with no gap, and new
	// joins work again.
	send(t, sp, 20, 60)
	waitFor(t, 15*time.Second, "frames after the outage", func() bool { return hb.count() == 60 })
	t.Logf("ready and audio flowing %v after Redis came back", time.Since(back).Round(10*time.Millisecond))
	hb.inOrder(t, "listener across the outage", 0, 60)
	_, h2 := listen(t, a.url, id)
	send(t, sp, 60, 70)
	waitFor(t, 10*time.Second, "frames for the new listener", func() bool { return h2.count() == 10 && hb.count() == 70 })
	h2.inOrder(t, "listener joined after the outage", 60, 70)
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if len(hb.gaps) != 0 {
		t.Errorf("gaps %+v across a restart that kept the data", hb.gaps)
	}
}

// TestCluster_RedisLost restarts Redis empty (no persistence): the stream
// history is gone, and the listener is told so (streamGap epochChanged)
// before audio flows again.
func TestCluster_RedisLost(t *testing.T) {
	srv := redistest.Start(t)
	token := mintToken(t, srv.URL(), "speaker")
	a := startNode(t, "A", srv.URL())
	b := startNode(t, "B", srv.URL())
	sp := speak(t, a.url, token)
	_, hb := listen(t, b.url, sp.Session())
	send(t, sp, 0, 20)
	waitFor(t, 10*time.Second, "frames before the loss", func() bool { return hb.count() == 20 })

	srv.Restart()
	for _, n := range []*node{a, b} {
		waitFor(t, 10*time.Second, n.name+" ready again", n.ready)
	}
	// Publishing waits for nothing: keep sending until the listener's node
	// has resubscribed and frames flow again.
	next := 20
	waitFor(t, 15*time.Second, "audio flowing again", func() bool {
		send(t, sp, next, next+5)
		next += 5
		return hb.count() > 20
	})
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if len(hb.gaps) != 1 || hb.gaps[0].Reason != "epochChanged" {
		t.Fatalf("gaps = %+v, want one epochChanged", hb.gaps)
	}
	for i := 1; i < len(hb.chunks); i++ {
		if hb.chunks[i] <= hb.chunks[i-1] {
			t.Fatalf("chunks out of order after the loss: %v", hb.chunks)
		}
	}
}

// TestCluster_Drain stops a node with SIGTERM: its listener is asked to
// refresh and moves to another node through the balancer, missing nothing.
func TestCluster_Drain(t *testing.T) {
	srv := redistest.Start(t)
	token := mintToken(t, srv.URL(), "speaker")
	a := startNode(t, "A", srv.URL())
	b := startNode(t, "B", srv.URL())
	sp := speak(t, a.url, token)
	lb := startProxy(t, b, a)
	_, h := listen(t, lb.url(), sp.Session())
	send(t, sp, 0, 20)
	waitFor(t, 10*time.Second, "frames before the drain", func() bool { return h.count() == 20 })

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = b.cmd.Process.Signal(os.Interrupt)
		<-b.done
	}()
	send(t, sp, 20, 100) // while B drains
	waitFor(t, 10*time.Second, "the listener to move", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.joins) == 2
	})
	send(t, sp, 100, 200)
	waitFor(t, 10*time.Second, "every frame across the drain", func() bool { return h.count() == 200 })
	h.inOrder(t, "drained listener", 0, 200)
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("B did not stop within 15 s of SIGINT")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.joins[1].Refresh || len(h.gaps) != 0 {
		t.Fatalf("second join %+v, gaps %+v: want a refresh and no gap", h.joins[1], h.gaps)
	}
}

// metric returns the value of an unlabelled metric on a node's /metrics.
func metric(t *testing.T, n *node, name string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return "(missing)"
}

// TestCluster_SpeakerNodeDies kills the speaker's node without warning: the
// other node notices the missing speaker, tells its listeners, and ends the
// session once the grace period has passed with no speaker anywhere.
func TestCluster_SpeakerNodeDies(t *testing.T) {
	srv := redistest.Start(t)
	token := mintToken(t, srv.URL(), "speaker")
	const grace = 2 * time.Second
	a := startNode(t, "A", srv.URL(), "SPEAKER_GRACE_SECONDS=2")
	b := startNode(t, "B", srv.URL(), "SPEAKER_GRACE_SECONDS=2")

	sp := speak(t, a.url, token)
	id := sp.Session()
	var mu sync.Mutex
	var events []string
	_, h := listen(t, b.url, id)
	send(t, sp, 0, 20)
	waitFor(t, 10*time.Second, "the first frames on B", func() bool { return h.count() == 20 })

	lb := client.NewListener(b.url, id, "en")
	lb.Binary = true
	lb.OnEvent = func(e client.Event) {
		mu.Lock()
		events = append(events, e.Type)
		mu.Unlock()
	}
	if err := lb.Open(ctx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lb.Close() })
	has := func(typ string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range events {
			if e == typ {
				return true
			}
		}
		return false
	}

	a.kill()
	killed := time.Now()
	// Three missed speaker heartbeats (one per presence refresh), then the grace.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node B log:\n%s\nnode A log:\n%s", b.out.String(), a.out.String())
		}
	})
	waitFor(t, 15*time.Second, "speakerDisconnected on B", func() bool { return has(client.EventSpeakerDisconnected) })
	noticed := time.Since(killed)
	select {
	case <-lb.Done():
	case <-time.After(3*presenceRefresh + grace + 5*time.Second):
		t.Fatalf("session not ended %v after the speaker's node died; events %v", time.Since(killed), events)
	}
	if !errors.Is(lb.Err(), client.ErrSessionEnded) || !has(client.EventSessionEnded) {
		t.Fatalf("listener stopped with %v, events %v; want the session ended", lb.Err(), events)
	}
	if s := getSession(t, b, id); s.Status != "ended" {
		t.Fatalf("session on B = %+v, want ended", s)
	}
	t.Logf("speaker loss noticed %v and session ended %v after kill -9 (grace %v)", noticed.Round(10*time.Millisecond), time.Since(killed).Round(10*time.Millisecond), grace)
}
