package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pentecost/pentecost/redistest"
)

const (
	// refreshHandover is how long a replaced connection may stay open
	// (realtime.DefaultRefreshHandover); the server then closes it with
	// closeMaxDuration.
	refreshHandover  = 10 * time.Second
	closeMaxDuration = 4002
	// handoverBound is how long after a refresh on another node the
	// replaced connection may stay open: its node learns of it at its next
	// presence refresh, then grants the handover; plus slack for a loaded
	// machine.
	handoverBound = presenceRefresh + refreshHandover + 5*time.Second
)

// rawListener is a listener connection that does what the protocol
// allows but an honest client would not: it keeps every connection it
// refreshed from open, reading until the server closes it.
type rawListener struct {
	name   string // e.g. "A2": node and step
	id     string // connectionId
	ticket string // refreshTicket
	opened time.Time
	conn   *websocket.Conn

	mu     sync.Mutex
	frames int       // binary (audio) messages read
	closed time.Time // when the server ended it
	err    error     // what ended it
	done   chan struct{}
}

func (l *rawListener) audio() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.frames
}

func (l *rawListener) isDone() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// rawListen joins session id in English on n, or with ticket != ""
// refreshes the connection the ticket names, and reads until the end.
// The reply must be sessionJoined (or connectionRefreshComplete); an error
// reply is returned as its code, with a nil listener.
func rawListen(t *testing.T, n *node, name, id, ticket string) (*rawListener, string) {
	t.Helper()
	q := url.Values{"sessionId": {id}, "targetLanguage": {"en"}, "audioFormat": {"binary"}, "action": {"joinSession"}}
	want := "sessionJoined"
	if ticket != "" {
		q.Set("action", "refreshConnection")
		q.Set("role", "listener")
		q.Set("refreshTicket", ticket)
		want = "connectionRefreshComplete"
	}
	c, _, err := websocket.Dial(ctx(t, 10*time.Second), "ws"+strings.TrimPrefix(n.url, "http")+"/ws?"+q.Encode(), nil)
	if err != nil {
		t.Fatalf("listener %s: %v", name, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	typ, data, err := c.Read(ctx(t, 10*time.Second))
	if err != nil || typ != websocket.MessageText {
		t.Fatalf("listener %s: first message %v, %v", name, typ, err)
	}
	var reply struct {
		Type          string `json:"type"`
		Code          string `json:"code"`
		ConnectionID  string `json:"connectionId"`
		RefreshTicket string `json:"refreshTicket"`
	}
	if err := json.Unmarshal(data, &reply); err != nil {
		t.Fatalf("listener %s: %v in %s", name, err, data)
	}
	if reply.Type == "error" {
		c.CloseNow()
		return nil, reply.Code
	}
	if reply.Type != want || reply.RefreshTicket == "" || reply.ConnectionID == "" {
		t.Fatalf("listener %s: reply %s, want %s with a ticket", name, data, want)
	}
	l := &rawListener{name: name, id: reply.ConnectionID, ticket: reply.RefreshTicket, opened: time.Now(), conn: c, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			typ, _, err := c.Read(context.Background())
			l.mu.Lock()
			if err != nil {
				l.closed, l.err = time.Now(), err
				l.mu.Unlock()
				return
			}
			if typ == websocket.MessageBinary {
				l.frames++
			}
			l.mu.Unlock()
		}
	}()
	return l, ""
}

// TestCluster_RefreshOnOtherNodeClosesOld is the refresh ping-pong: a
// client fills a session to its cap, then refreshes each connection with
// its ticket on the other node, again and again, keeping every old
// connection open. Each refresh takes its old connection's place in
// presence, so the count stays at the cap; the old connection's node
// learns at its next presence refresh that it was replaced and closes it
// with 4002 once the handover has passed. Before, it stayed open, hearing
// audio, uncounted, and every refresh added one listener past the cap.
func TestCluster_RefreshOnOtherNodeClosesOld(t *testing.T) {
	const max, hops = 3, 4
	srv := redistest.Start(t)
	token := mintToken(t, srv.URL(), "speaker")
	capEnv := fmt.Sprintf("MAX_LISTENERS_PER_SESSION=%d", max)
	a := startNode(t, "A", srv.URL(), capEnv)
	b := startNode(t, "B", srv.URL(), capEnv)
	sp := speak(t, a.url, token)
	id := sp.Session()

	// A count above the cap on any node, at any check, fails the test.
	checkCount := func(when string) {
		t.Helper()
		for _, n := range []*node{a, b} {
			if got := getSession(t, n, id).ListenerCount; got > max {
				t.Fatalf("%s: listener count on %s = %d, over the cap of %d", when, n.name, got, max)
			}
		}
	}

	var replaced []*rawListener
	refreshedAt := map[*rawListener]time.Time{} // when its replacement was answered
	live := make([]*rawListener, max)
	for i := range live {
		l, code := rawListen(t, a, fmt.Sprintf("A%d.0", i), id, "")
		if l == nil {
			t.Fatalf("join %d = %s", i, code)
		}
		live[i] = l
	}
	if l, code := rawListen(t, b, "B.full", id, ""); l != nil || code != "SESSION_FULL" {
		t.Fatalf("join past the cap = %s, want SESSION_FULL", code)
	}
	nodes := []*node{a, b}
	for hop := 1; hop <= hops; hop++ {
		n := nodes[hop%2] // B, A, B, A: always the other node
		for i, old := range live {
			l, code := rawListen(t, n, fmt.Sprintf("%s%d.%d", n.name, i, hop), id, old.ticket)
			if l == nil {
				t.Fatalf("refresh of %s on %s = %s", old.name, n.name, code)
			}
			refreshedAt[old] = time.Now()
			replaced = append(replaced, old)
			live[i] = l
		}
		checkCount(fmt.Sprintf("after hop %d", hop))
	}
	if l, code := rawListen(t, a, "A.full", id, ""); l != nil || code != "SESSION_FULL" {
		t.Fatalf("join past the cap after the refreshes = %s, want SESSION_FULL", code)
	}

	// Every connection refreshed from ends with 4002, after its handover
	// and within the bound.
	for _, old := range replaced {
		select {
		case <-old.done:
		case <-time.After(time.Until(refreshedAt[old].Add(handoverBound))):
			if !old.isDone() {
				t.Fatalf("%s still open %v after a refresh on the other node replaced it", old.name, handoverBound)
			}
		}
		old.mu.Lock()
		closed, err := old.closed, old.err
		old.mu.Unlock()
		if code := websocket.CloseStatus(err); code != closeMaxDuration {
			t.Fatalf("%s ended with %v (code %d), want %d", old.name, err, code, closeMaxDuration)
		}
		// The client had its handover: its node started the clock once it
		// learnt of the refresh, which cannot precede the refresh's reply
		// by much.
		if d := closed.Sub(refreshedAt[old]); d < refreshHandover-time.Second {
			t.Fatalf("%s closed %v after it was replaced, before its %v handover", old.name, d, refreshHandover)
		}
	}
	checkCount("after the handovers")

	// The connections still open hear the speaker, and there are as many
	// as the cap allows: the latest of each chain.
	before := make(map[*rawListener]int, len(live))
	for _, l := range live {
		if l.isDone() {
			t.Fatalf("%s, the latest of its chain, was closed: %v", l.name, l.err)
		}
		before[l] = l.audio()
	}
	send(t, sp, 0, 10)
	waitFor(t, 10*time.Second, "the open listeners to hear the speaker", func() bool {
		for _, l := range live {
			if l.audio() < before[l]+10 {
				return false
			}
		}
		return true
	})
	open := 0
	for _, l := range append(replaced, live...) {
		if !l.isDone() {
			open++
		}
	}
	if open > max {
		t.Fatalf("%d listener connections open, over the cap of %d", open, max)
	}
	checkCount("at the end")
}
