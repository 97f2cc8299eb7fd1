package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// dialKind says why a connection is opened; each role builds its URL from it.
type dialKind uint8

const (
	dialFirst     dialKind = iota // Open
	dialReconnect                 // after a connection was lost
	dialRefresh                   // after connectionRefreshRequired
)

// replyTypes are the server's first message on an accepted connection.
var replyTypes = map[string]bool{
	"sessionJoined":             true,
	"speakerConnected":          true,
	"sessionCreated":            true,
	"connectionRefreshComplete": true,
	"workerConnected":           true,
}

// conn is one WebSocket connection of a client: a reader goroutine that
// hands messages to the client, and a heartbeat goroutine.
type conn struct {
	b    *base
	ws   *websocket.Conn
	kind dialKind

	ready      chan struct{} // closed when the server accepted the connection
	readyOnce  sync.Once
	done       chan struct{} // closed when the reader ended
	refreshing atomic.Bool   // a refresh of this connection was started
	lastRead   atomic.Int64  // Unix nanoseconds
	// serverID is the server's connection ID (Worker; set by its reader
	// before the connection is installed).
	serverID string
	// ticket is the refresh ticket the server's reply gave (reader only):
	// a refresh of this connection presents it, so that the server counts
	// the new connection in this one's place.
	ticket string
	// lang and paused are what a Listener's connection was asked for:
	// set by joined before it is installed, then under b.sendMu.
	lang   string
	paused bool

	// Reader state.
	buf []byte
	msg wireMsg

	mu      sync.Mutex
	lastErr *Error // the last error message received
	endErr  error  // why the reader ended
	// waiters are requests waiting for a reply on this connection (Worker).
	waiters []*waiter
}

func newConn(b *base, ws *websocket.Conn, kind dialKind) *conn {
	c := &conn{b: b, ws: ws, kind: kind, ready: make(chan struct{}), done: make(chan struct{})}
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

// read runs the reader until the connection ends.
func (c *conn) read() {
	defer close(c.done)
	var err error
	for {
		var typ websocket.MessageType
		var r io.Reader
		typ, r, err = c.ws.Reader(context.Background())
		if err != nil {
			break
		}
		c.buf, err = readAll(c.buf[:0], r)
		if err != nil {
			break
		}
		c.lastRead.Store(time.Now().UnixNano())
		if typ == websocket.MessageBinary {
			c.b.handleBinary(c, c.buf)
			continue
		}
		c.handleText(c.buf)
	}
	c.mu.Lock()
	ce := &CloseError{Code: int(websocket.CloseStatus(err)), Err: c.lastErr}
	var wce websocket.CloseError
	if errors.As(err, &wce) {
		ce.Reason = wce.Reason
	}
	c.endErr = ce
	waiters := c.waiters
	c.waiters = nil
	c.mu.Unlock()
	for _, w := range waiters {
		w.finish(ce)
	}
	_ = c.ws.CloseNow()
}

// readAll reads a message into buf, reusing its capacity.
func readAll(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func (c *conn) handleText(p []byte) {
	m := &c.msg
	m.reset()
	if err := json.Unmarshal(p, m); err != nil {
		c.b.log.Warn("server sent a message that is not JSON", logError, err)
		return
	}
	switch m.Type {
	case "heartbeatAck":
		return
	case "error":
		e := m.error()
		c.mu.Lock()
		c.lastErr = e
		var w *waiter
		for i, x := range c.waiters {
			if x.key.answeredBy(m) {
				w = x
				c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
				break
			}
		}
		c.mu.Unlock()
		if !c.isReady() {
			return // the reason for a refusal; the close follows
		}
		if w != nil {
			w.finish(e)
			return
		}
		c.b.handleError(e)
		return
	case "connectionRefreshRequired":
		c.b.refresh(c)
		return
	}
	if replyTypes[m.Type] && m.RefreshTicket != "" {
		c.ticket = m.RefreshTicket
	}
	c.b.handleText(c, m)
	if replyTypes[m.Type] {
		c.readyOnce.Do(func() { close(c.ready) })
	}
	c.complete(m)
}

func (c *conn) isReady() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

func (c *conn) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// err returns why the connection ended (after done).
func (c *conn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endErr
}

// heartbeat sends heartbeats and drops the connection when nothing arrived
// for three intervals (the server pings too, but its pings are answered
// inside the WebSocket library and not seen here; heartbeatAcks are).
func (c *conn) heartbeat(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	msg := []byte(`{"action":"heartbeat"}`)
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if time.Since(time.Unix(0, c.lastRead.Load())) > 3*interval {
			c.b.log.Warn("connection silent; reconnecting")
			_ = c.ws.CloseNow()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		_ = c.ws.Write(ctx, websocket.MessageText, msg)
		cancel()
	}
}

// closeNormally closes with 1000 and waits for the server's reply. It
// reports whether the server answered the close: the server handles a
// connection's messages in order, so everything sent before was processed.
func (c *conn) closeNormally() (clean bool) {
	err := c.ws.Close(websocket.StatusNormalClosure, "")
	<-c.done
	ce, _ := c.err().(*CloseError)
	return err == nil && ce != nil && ce.Code == CloseNormal
}

// waiter is a request waiting for its reply on one connection.
type waiter struct {
	key   reqKey
	match func(m *wireMsg) bool
	ch    chan error
}

// reqKey names a request as the server's error replies to workers do.
type reqKey struct{ action, session, lang string }

// answeredBy reports whether the error message m answers the request k. The
// server names the action, session and language; an older one names
// nothing, and then an error answers the oldest request still waiting.
func (k reqKey) answeredBy(m *wireMsg) bool {
	if m.Action == "" {
		return true
	}
	return m.Action == k.action && m.SessionID == k.session && m.TargetLanguage == k.lang
}

func (w *waiter) finish(err error) {
	select {
	case w.ch <- err:
	default:
	}
}

// request writes p, the request k, on c and waits until a message for which
// match is true arrives (nil), an error message answers it (*Error), or c
// ends.
func (c *conn) request(ctx context.Context, k reqKey, p []byte, match func(m *wireMsg) bool) error {
	w := &waiter{key: k, match: match, ch: make(chan error, 1)}
	c.mu.Lock()
	if c.endErr != nil {
		c.mu.Unlock()
		return c.endErr
	}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	if err := c.ws.Write(ctx, websocket.MessageText, p); err != nil {
		c.dropWaiter(w)
		return err
	}
	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		c.dropWaiter(w)
		return ctx.Err()
	}
}

func (c *conn) dropWaiter(w *waiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			return
		}
	}
}

// complete finishes the first waiter that m answers.
func (c *conn) complete(m *wireMsg) {
	c.mu.Lock()
	var w *waiter
	for i, x := range c.waiters {
		if x.match(m) {
			w = x
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	if w != nil {
		w.finish(nil)
	}
}
