package client_test

// This file plays the part of a client written for the original system,
// behaving as its published example clients do. It deliberately does not
// use package client: only a raw WebSocket library and encoding/json, with
// every message the server sends decoded into map[string]any, as a Python
// client's json.loads would.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
)

// legacyHeartbeatInterval is how often the original clients send
// {"action":"heartbeat"}: every 30 s. The test shortens it so that it sees
// several acks; the code path is the same.
var legacyHeartbeatInterval = 30 * time.Second

// legacyClient is an original-system client: one WebSocket at a time,
// replaced when the server asks for a refresh.
type legacyClient struct {
	t          *testing.T
	name       string
	refreshURL string

	mu  sync.Mutex // guards cur and audio
	cur *websocket.Conn
	// audio is what a listener heard, by sequence number: the client plays
	// each number at most once (docs/protocol.md, section 6).
	audio map[float64][]byte
	heard int // audioData messages received, repeats included

	msgs      chan map[string]any // everything else, in order
	acks      atomic.Int32        // heartbeatAcks
	refreshes atomic.Int32        // completed refreshes
	stop      chan struct{}
	wg        sync.WaitGroup
}

// legacyDial connects like the original clients: the query string only,
// no Origin header, no subprotocol.
func legacyDial(t *testing.T, name, rawURL string) *legacyClient {
	t.Helper()
	c := &legacyClient{t: t, name: name, audio: map[float64][]byte{}, msgs: make(chan map[string]any, 1024), stop: make(chan struct{})}
	ws := c.dial(rawURL)
	c.cur = ws
	t.Cleanup(func() {
		close(c.stop)
		c.mu.Lock()
		ws := c.cur
		c.mu.Unlock()
		_ = ws.CloseNow()
		c.wg.Wait()
	})
	return c
}

func (c *legacyClient) dial(rawURL string) *websocket.Conn {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, rawURL, nil)
	if err != nil {
		c.t.Fatalf("%s: dial: %v", c.name, err)
	}
	ws.SetReadLimit(1 << 20)
	c.wg.Add(1)
	go c.read(ws, nil)
	return ws
}

// read is the client's message loop for one connection. On a refresh
// connection, complete is closed when connectionRefreshComplete arrives.
func (c *legacyClient) read(ws *websocket.Conn, complete chan struct{}) {
	defer c.wg.Done()
	for {
		typ, data, err := ws.Read(context.Background())
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			c.t.Errorf("%s: server sent a binary message to a client that did not ask for one", c.name)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			c.t.Errorf("%s: json.loads failed on %q: %v", c.name, data, err)
			return
		}
		switch m["type"] {
		case "heartbeatAck":
			c.acks.Add(1)
		case "audioData":
			pcm, err := base64.StdEncoding.DecodeString(m["audioData"].(string))
			if err != nil {
				c.t.Errorf("%s: audioData is not base64: %v", c.name, err)
				return
			}
			seq := m["sequenceNumber"].(float64)
			c.mu.Lock()
			c.heard++
			if prev, ok := c.audio[seq]; ok && !bytes.Equal(prev, pcm) {
				c.t.Errorf("%s: sequence number %v carried two different chunks", c.name, seq)
			}
			c.audio[seq] = pcm
			c.mu.Unlock()
		case "connectionRefreshRequired":
			c.wg.Add(1)
			go c.refresh(ws)
		case "connectionRefreshComplete":
			if complete != nil {
				close(complete)
				complete = nil
			}
		default:
			select {
			case c.msgs <- m:
			case <-c.stop:
				return
			}
		}
	}
}

// refresh does what the original clients do on connectionRefreshRequired:
// open the refresh URL, wait for connectionRefreshComplete, switch to the
// new connection and close the old one with 1000.
func (c *legacyClient) refresh(old *websocket.Conn) {
	defer c.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, c.refreshURL, nil)
	if err != nil {
		c.t.Errorf("%s: refresh dial: %v", c.name, err)
		return
	}
	ws.SetReadLimit(1 << 20)
	complete := make(chan struct{})
	c.wg.Add(1)
	go c.read(ws, complete)
	select {
	case <-complete:
	case <-ctx.Done():
		c.t.Errorf("%s: no connectionRefreshComplete within %s", c.name, wait)
		_ = ws.CloseNow()
		return
	}
	c.mu.Lock()
	c.cur = ws
	c.mu.Unlock()
	_ = old.Close(websocket.StatusNormalClosure, "")
	c.refreshes.Add(1)
}

// send writes a JSON message on the current connection.
func (c *legacyClient) send(m map[string]any) {
	c.t.Helper()
	p, err := json.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.cur.Write(ctx, websocket.MessageText, p); err != nil {
		c.t.Fatalf("%s: send %v: %v", c.name, m["action"], err)
	}
}

// heartbeats sends {"action":"heartbeat"} every legacyHeartbeatInterval.
func (c *legacyClient) heartbeats() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(legacyHeartbeatInterval)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			c.mu.Lock()
			ws := c.cur
			c.mu.Unlock()
			_ = ws.Write(context.Background(), websocket.MessageText, []byte(`{"action":"heartbeat"}`))
		}
	}()
}

// expect returns the next message of type typ, failing on any error message.
func (c *legacyClient) expect(typ string) map[string]any {
	c.t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case m := <-c.msgs:
			if m["type"] == typ {
				return m
			}
			if m["type"] == "error" {
				c.t.Fatalf("%s: error while waiting for %s: %v", c.name, typ, m)
			}
		case <-timeout:
			c.t.Fatalf("%s: no %s within %s", c.name, typ, wait)
		}
	}
}

// inOrder returns the chunks heard, in sequence-number order.
func (c *legacyClient) inOrder() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	seqs := make([]float64, 0, len(c.audio))
	for seq := range c.audio {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	out := make([][]byte, len(seqs))
	for i, seq := range seqs {
		out[i] = c.audio[seq]
	}
	return out
}

func (c *legacyClient) heardCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.audio)
}

func TestCompat_OriginalClient(t *testing.T) {
	legacyHeartbeatInterval = 50 * time.Millisecond
	t.Cleanup(func() { legacyHeartbeatInterval = 30 * time.Second })
	e := newEnv(t, func(s *realtime.Server) {
		s.RefreshAfter = 400 * time.Millisecond
		s.HeartbeatLimit = pentecost.Limit{} // the test heartbeats fast
	})
	tok := e.token("alice")

	// The speaker creates the session over the socket.
	sp := legacyDial(t, "speaker", e.WSURL+"?"+url.Values{"action": {"createSession"}, "sourceLanguage": {"en"},
		"qualityTier": {"standard"}, "token": {tok}}.Encode())
	created := sp.expect("sessionCreated")
	id, _ := created["sessionId"].(string)
	if id == "" || created["sourceLanguage"] != "en" || created["qualityTier"] != "standard" ||
		created["connectionId"] == nil || created["expiresAt"] == nil || created["timestamp"] == nil {
		t.Fatalf("sessionCreated = %v", created)
	}
	sp.refreshURL = e.WSURL + "?" + url.Values{"action": {"refreshConnection"}, "sessionId": {id}, "role": {"speaker"}, "token": {tok}}.Encode()
	sp.heartbeats()

	// The listener joins.
	ls := legacyDial(t, "listener", e.WSURL+"?"+url.Values{"action": {"joinSession"}, "sessionId": {id}, "targetLanguage": {"en"}}.Encode())
	joined := ls.expect("sessionJoined")
	if joined["sessionId"] != id || joined["targetLanguage"] != "en" || joined["sourceLanguage"] != "en" || joined["broadcastState"] == nil {
		t.Fatalf("sessionJoined = %v", joined)
	}
	ls.refreshURL = e.WSURL + "?" + url.Values{"action": {"refreshConnection"}, "sessionId": {id}, "role": {"listener"}, "targetLanguage": {"en"}}.Encode()
	ls.heartbeats()
	poll(t, "heartbeatAcks", func() bool { return sp.acks.Load() >= 2 && ls.acks.Load() >= 2 })

	sendAudio := func(i int) {
		sp.send(map[string]any{"action": "sendAudio", "sessionId": id, "audioData": base64.StdEncoding.EncodeToString(chunk(i, chunkSize(i)))})
	}
	n := 0
	for ; n < 10; n++ {
		sendAudio(n)
	}
	poll(t, "first audio", func() bool { return ls.heardCount() == n })

	sp.send(map[string]any{"action": "controlSession", "command": "pause"})
	if m := ls.expect("sessionPaused"); m["broadcastState"].(map[string]any)["isPaused"] != true {
		t.Fatalf("sessionPaused = %v", m)
	}
	sp.send(map[string]any{"action": "controlSession", "command": "resume"})
	ls.expect("sessionResumed")

	// Audio flows while the server has both clients refresh. The original
	// clients send audio as it is recorded; this sends it faster than real
	// time but paced, as a microphone would.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(wait)
	for sp.refreshes.Load() < 1 || ls.refreshes.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("refreshes: speaker %d, listener %d", sp.refreshes.Load(), ls.refreshes.Load())
		}
		<-tick.C
		sendAudio(n)
		n++
	}
	// After both refreshes the audio continues on the new connections.
	const tail = 10
	for end := n + tail; n < end; n++ {
		sendAudio(n)
	}
	poll(t, "audio after the refreshes", func() bool {
		heard := ls.inOrder()
		return len(heard) >= tail && chunkIndex(heard[len(heard)-1]) == n-1
	})
	heard := ls.inOrder()
	// Every chunk is heard byte for byte.
	lost, reordered := map[int]bool{}, 0
	for i := range n {
		lost[i] = true
	}
	for k, pcm := range heard {
		i := chunkIndex(pcm)
		if i < 0 || i >= n || !bytes.Equal(pcm, chunk(i, chunkSize(i))) {
			t.Fatalf("heard %d bytes that are no chunk the speaker sent", len(pcm))
		}
		if !lost[i] {
			t.Fatalf("chunk %d heard under two sequence numbers", i)
		}
		delete(lost, i)
		if k > 0 && i < chunkIndex(heard[k-1]) {
			reordered++
		}
	}
	// Before the refresh and after it, nothing is lost or out of order.
	for k := 0; k < 10; k++ {
		if chunkIndex(heard[k]) != k {
			t.Fatalf("before the refresh: position %d holds chunk %d", k, chunkIndex(heard[k]))
		}
	}
	for k := 1; k <= tail; k++ {
		if got := chunkIndex(heard[len(heard)-k]); got != n-k {
			t.Fatalf("after the refresh: chunk %d heard where %d was due", got, n-k)
		}
	}
	// The server holds a refreshing speaker's audio until the old
	// connection is done, so nothing is ever out of order. A listener that
	// sends no lastSequenceNumber may lose what was in flight on the
	// connection it closes (docs/protocol.md, section 6); measure that.
	if reordered > 0 {
		t.Fatalf("%d chunks heard out of order across the refresh", reordered)
	}
	ls.mu.Lock()
	t.Logf("%d chunks sent; %d audioData messages; lost in the switch-over: %d; out of order: %d", n, ls.heard, len(lost), reordered)
	ls.mu.Unlock()

	sp.send(map[string]any{"action": "endSession"})
	if m := ls.expect("sessionEnded"); m["sessionId"] != id {
		t.Fatalf("sessionEnded = %v", m)
	}
}
