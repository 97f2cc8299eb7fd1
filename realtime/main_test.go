package realtime_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/servertest"
)

// wait is how long a test waits for something that should happen at once.
const wait = 5 * time.Second

// env is a whole server on loopback (see servertest) that flushes listener
// counts every 20 ms. Its Store is the unwrapped session service, so tests
// announce their own changes to the realtime server.
type env struct {
	*servertest.Server
	t testing.TB
}

// newEnv starts a server; configure adjusts the realtime server before Open.
func newEnv(t testing.TB, configure ...func(*realtime.Server)) *env {
	t.Helper()
	srv := servertest.Start(t,
		servertest.WorkerSecret("worker-secret"),
		servertest.Configure(func(s *realtime.Server) { s.CountFlushInterval = 20 * time.Millisecond }),
		servertest.Configure(configure...))
	return &env{Server: srv, t: t}
}

// token returns a speaker token for user id.
func (e *env) token(id string) string { return e.Token(id) }

// createSession creates a session owned by id with English as source.
func (e *env) createSession(id string) *pentecost.Session { return e.CreateSession(id, "en") }

// msg is one message received by a test client.
type msg struct {
	op   ws.OpCode
	data []byte
	m    map[string]any // decoded JSON for text frames
}

func (m msg) typ() string { s, _ := m.m["type"].(string); return s }

// client is a test WebSocket client. Its reader goroutine decodes every
// text frame as JSON, as the original system's clients do.
type client struct {
	t         testing.TB
	conn      net.Conn
	r         io.Reader
	in        chan msg
	closeCode ws.StatusCode
	done      chan struct{}
	wmu       sync.Mutex // the reader answers pings while the test writes
	noPong    bool
}

type dialOpts struct {
	header    http.Header
	protocols []string
	noRead    bool
	noPong    bool        // a client that has gone silent
	tls       *tls.Config // for a server on TLS (wss)
}

func (e *env) dial(query string, o ...dialOpts) *client {
	e.t.Helper()
	c, err := e.tryDial(query, o...)
	if err != nil {
		e.t.Fatalf("dial %s: %v", query, err)
	}
	return c
}

func (e *env) tryDial(query string, o ...dialOpts) (*client, error) {
	var opt dialOpts
	if len(o) > 0 {
		opt = o[0]
	}
	d := ws.Dialer{Protocols: opt.protocols, Timeout: wait, TLSConfig: opt.tls}
	if opt.header != nil {
		d.Header = ws.HandshakeHeaderHTTP(opt.header)
	}
	conn, br, _, err := d.Dial(context.Background(), e.WSURL+"?"+query)
	if err != nil {
		return nil, err
	}
	c := &client{t: e.t, conn: conn, r: conn, in: make(chan msg, 4096), done: make(chan struct{}), noPong: opt.noPong}
	if br != nil {
		c.r = br
	}
	e.t.Cleanup(func() { _ = conn.Close() })
	if !opt.noRead {
		go c.read()
	}
	return c, nil
}

func (c *client) read() {
	defer close(c.done)
	defer close(c.in)
	// Frames are read by hand: gobwas' control handler refuses close codes
	// registered after RFC 6455 (1013), which browsers accept.
	for {
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			return
		}
		data := make([]byte, h.Length)
		if _, err := io.ReadFull(c.r, data); err != nil {
			return
		}
		switch h.OpCode {
		case ws.OpClose:
			if len(data) >= 2 {
				c.closeCode = ws.StatusCode(binary.BigEndian.Uint16(data))
			}
			c.write(ws.OpClose, data[:min(len(data), 2)])
			return
		case ws.OpPing:
			if !c.noPong {
				c.write(ws.OpPong, data)
			}
			c.in <- msg{op: ws.OpPing}
			continue
		case ws.OpPong:
			continue
		}
		if !h.Fin {
			c.t.Errorf("server sent a fragmented message")
			return
		}
		m := msg{op: h.OpCode, data: data}
		if h.OpCode == ws.OpText {
			if err := json.Unmarshal(data, &m.m); err != nil {
				c.t.Errorf("server sent text that is not JSON: %q", data)
			}
		}
		c.in <- m
	}
}

// next returns the next message, failing the test on timeout or close.
func (c *client) next() msg {
	c.t.Helper()
	select {
	case m, ok := <-c.in:
		if !ok {
			c.t.Fatalf("connection closed (code %d) while waiting for a message", c.closeCode)
		}
		return m
	case <-time.After(wait):
		c.t.Fatalf("no message within %s", wait)
	}
	return msg{}
}

// expect returns the next message of type typ, skipping others.
func (c *client) expect(typ string) msg {
	c.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				c.t.Fatalf("connection closed (code %d) while waiting for %q", c.closeCode, typ)
			}
			if m.typ() == typ {
				return m
			}
		case <-deadline:
			c.t.Fatalf("no %q within %s", typ, wait)
		}
	}
}

// expectClose waits for the connection to end and returns the close code.
func (c *client) expectClose() ws.StatusCode {
	c.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case _, ok := <-c.in:
			if !ok {
				return c.closeCode
			}
		case <-deadline:
			c.t.Fatalf("connection not closed within %s", wait)
		}
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendText(b)
}

func (c *client) sendText(b []byte) {
	c.t.Helper()
	if err := c.write(ws.OpText, b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) sendBinary(b []byte) {
	c.t.Helper()
	if err := c.write(ws.OpBinary, b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) write(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return wsutil.WriteClientMessage(c.conn, op, p)
}

// closeNormally sends a close frame with 1000, as a client leaving does.
// writeFrame writes one raw frame, masked as a client's must be; h.Length
// defaults to len(p), and may claim more than is sent.
func (c *client) writeFrame(h ws.Header, p []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if h.Length == 0 {
		h.Length = int64(len(p))
	}
	h.Masked, h.Mask = true, ws.NewMask()
	body := append([]byte(nil), p...)
	ws.Cipher(body, h.Mask, 0)
	if err := ws.WriteHeader(c.conn, h); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(body); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) closeNormally() {
	_ = c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	_ = c.conn.Close()
}

// poll waits until cond holds, failing after the deadline.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	servertest.Poll(t, wait, what, cond)
}

// httpListenerCount reads listenerCount from GET /sessions/{id}.
func (e *env) httpListenerCount(id string) int {
	e.t.Helper()
	resp, err := http.Get(e.URL + "/sessions/" + id)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		ListenerCount int `json:"listenerCount"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		e.t.Fatal(err)
	}
	return s.ListenerCount
}

// audio returns a chunk of n bytes whose first 8 bytes carry i, so a
// receiver can tell chunks apart and check them byte for byte.
func audio(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*31 + j)
	}
	b[0], b[1], b[2], b[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return b
}

// nextBinary returns the next binary message; safe in goroutines.
func (c *client) nextBinary() (msg, error) {
	timeout := time.After(wait)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				return msg{}, fmt.Errorf("connection closed (code %d)", c.closeCode)
			}
			if m.op == ws.OpBinary {
				return m, nil
			}
		case <-timeout:
			return msg{}, fmt.Errorf("no binary message within %s", wait)
		}
	}
}
