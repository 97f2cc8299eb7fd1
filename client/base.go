package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// role is what a Listener, Speaker or Worker adds to the shared connection
// handling in base.
type role interface {
	// dialURL returns the URL of a connection of the given kind; ticket is
	// the refresh ticket of the connection a refresh replaces ("" for none).
	dialURL(k dialKind, ticket string) (string, error)
	// header adds the role's handshake headers (a worker's credential).
	header(h http.Header)
	// handle handles a text message from c; base serializes the calls.
	handle(c *conn, m *wireMsg)
	// handleBinary handles a binary message from c; p is valid during the call.
	handleBinary(c *conn, p []byte)
	// prepare readies a new connection before it becomes current, while the
	// old one (if any) still works: a worker resubscribes there.
	prepare(ctx context.Context, c *conn) error
	// installed runs, with writes held, when c becomes the connection
	// writes go to. clean reports whether everything written on the
	// previous connection is known to have been processed.
	installed(c *conn, clean bool)
}

// errConnLost is returned by write when the connection broke while writing.
var errConnLost = errors.New("pentecost: connection lost while writing")

// maxPending bounds the writes held while a refresh switches connections.
const maxPending = 4096

// pendingWrite is a message held while a refresh switches connections.
type pendingWrite struct {
	typ     websocket.MessageType
	p       []byte
	written func(c *conn, p []byte, held bool) // see writeThen; may be nil
}

// base runs a client's connections: the first connect, reconnection,
// refresh switch-over, ordered writes and the client's end.
type base struct {
	opts *Options
	role role
	log  *slog.Logger

	onError func(error)

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup // connection goroutines

	// cbMu serializes message handling, and so callbacks, across connections.
	cbMu sync.Mutex

	// switchMu allows one connection switch at a time: a connection may be
	// asked to refresh while the switch to it still waits for the one
	// before it to close, and its audio must not overtake that one's.
	switchMu sync.Mutex
	// sendMu orders writes against connection switches. Taken before mu.
	sendMu  sync.Mutex
	pending []pendingWrite

	mu        sync.Mutex
	cur       *conn
	switching bool // a refresh is closing the old connection; writes are held
	changed   chan struct{}
	conns     map[*conn]struct{}
	opened    bool
	stopped   bool
	ended     bool // the session ended
	err       error

	// hook, set only by tests (export_test.go) before Open, is called at
	// named points of a connection switch, without locks held.
	hook func(point string)
}

func (b *base) hookAt(point string) {
	if b.hook != nil {
		b.hook(point)
	}
}

// init prepares b; it fails when the client was already opened.
func (b *base) init(opts *Options, r role) error {
	if b.done != nil {
		return errors.New("pentecost: client already opened")
	}
	b.opts, b.role = opts, r
	b.done = make(chan struct{})
	b.changed = make(chan struct{})
	b.conns = make(map[*conn]struct{})
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return nil
}

// open connects for the first time and starts the run loop.
func (b *base) open(ctx context.Context, name string) error {
	b.mu.Lock()
	if b.opened {
		b.mu.Unlock()
		return errors.New("pentecost: client already opened")
	}
	b.opened = true
	b.mu.Unlock()
	b.opts.setDefaults()
	b.log = b.opts.Logger.With("client", name)
	c, err := b.connect(ctx, dialFirst, "")
	if err != nil {
		b.stop(err)
		close(b.done)
		return err
	}
	b.install(c, true, true)
	go b.run()
	return nil
}

// header builds the handshake headers.
func (b *base) header() http.Header {
	h := http.Header{}
	for k, v := range b.opts.Header {
		h[k] = append([]string(nil), v...)
	}
	if b.opts.Origin != "" {
		h.Set("Origin", b.opts.Origin)
	}
	b.role.header(h)
	return h
}

// connect opens a connection and waits for the server to accept it; ticket
// is the refresh ticket a refresh presents.
func (b *base) connect(ctx context.Context, kind dialKind, ticket string) (*conn, error) {
	u, err := b.role.dialURL(kind, ticket)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, b.opts.DialTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPHeader: b.header(), HTTPClient: b.opts.HTTPClient})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		he := &HandshakeError{Err: err}
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			he.Status = resp.StatusCode
		}
		return nil, he
	}
	ws.SetReadLimit(maxMessage)
	c := newConn(b, ws, kind)
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		_ = ws.CloseNow()
		return nil, ErrClosed
	}
	b.conns[c] = struct{}{}
	b.wg.Add(2)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		c.read()
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
	}()
	go func() {
		defer b.wg.Done()
		c.heartbeat(b.opts.HeartbeatInterval)
	}()
	select {
	case <-c.ready:
		return c, nil
	case <-c.done:
		return nil, c.err()
	case <-dctx.Done():
		_ = ws.CloseNow()
		<-c.done
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &HandshakeError{Err: fmt.Errorf("no reply from the server within %s", b.opts.DialTimeout)}
	}
}

// install makes c the connection writes go to, then sends what was held
// during a switch. force is false for a refresh, which installs c only if
// nothing else replaced it meanwhile.
func (b *base) install(c *conn, clean, force bool) {
	if b.installLocked(c, clean, force) {
		b.hookAt("installed")
	}
}

func (b *base) installLocked(c *conn, clean, force bool) bool {
	b.sendMu.Lock()
	defer b.sendMu.Unlock()
	b.mu.Lock()
	if !force && b.cur != c {
		b.mu.Unlock()
		return false
	}
	b.cur, b.switching = c, false
	pending := b.pending
	b.pending = nil
	b.notifyLocked()
	b.mu.Unlock()
	b.role.installed(c, clean)
	var err error
	for _, p := range pending {
		// After a failed write the rest are not sent, but still reported
		// as written: a Speaker keeps them to send again after reconnecting.
		if err == nil {
			if err = c.ws.Write(b.ctx, p.typ, p.p); err != nil {
				b.log.Warn("write held message", logError, err)
				_ = c.ws.CloseNow() // so the run loop reconnects
			}
		}
		if p.written != nil {
			p.written(c, p.p, false)
		}
	}
	return true
}

func (b *base) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *base) current() *conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur
}

// run follows the current connection, reconnecting when it is lost, until
// the client is closed or must stop.
func (b *base) run() {
	defer b.finish()
	bo := backoff{min: b.opts.MinBackoff, max: b.opts.MaxBackoff}
	for {
		c := b.current()
		select {
		case <-c.done:
		case <-b.ctx.Done():
			return
		}
		b.mu.Lock()
		replaced := b.cur != c
		if !replaced {
			b.cur, b.switching = nil, false
			b.notifyLocked()
		}
		ended := b.ended
		b.mu.Unlock()
		if replaced {
			continue // a refresh switched to a new connection
		}
		if b.ctx.Err() != nil {
			return
		}
		err := c.err()
		if ended {
			b.stop(ErrSessionEnded)
			return
		}
		if !b.reconnect(err, &bo) {
			return
		}
	}
}

// reconnect connects again after a connection ended with err. It reports
// false when the client stops instead.
func (b *base) reconnect(err error, bo *backoff) bool {
	for {
		d := Classify(err)
		if !d.Retry {
			b.log.Warn("connection ended; stopping", logError, err)
			b.stop(err)
			return false
		}
		delay := bo.next()
		if d.Immediately {
			delay = 0
		}
		delay = max(delay, d.After)
		b.log.Warn("connection lost; reconnecting", logError, err, logDelay, delay)
		b.handleError(err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-b.ctx.Done():
			t.Stop()
			return false
		}
		var c *conn
		c, err = b.connect(b.ctx, dialReconnect, "")
		if err == nil {
			if err = b.role.prepare(b.ctx, c); err != nil {
				_ = c.ws.CloseNow()
			}
		}
		if b.ctx.Err() != nil {
			return false
		}
		if err == nil {
			b.switchMu.Lock()
			b.install(c, false, true)
			b.switchMu.Unlock()
			bo.reset()
			b.log.Debug("reconnected")
			return true
		}
	}
}

// refresh answers connectionRefreshRequired on old: it opens the refresh
// connection, presenting old's refresh ticket, and switches to it, in the
// background. It runs on old's reader, which set the ticket.
func (b *base) refresh(old *conn) {
	if !old.refreshing.CompareAndSwap(false, true) || b.current() != old {
		return
	}
	ticket := old.ticket
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		c, err := b.connect(b.ctx, dialRefresh, ticket)
		if err == nil {
			if err = b.role.prepare(b.ctx, c); err != nil {
				_ = c.ws.CloseNow()
			}
		}
		if err != nil {
			// The old connection goes on until the server closes it at its
			// maximum age; then the client reconnects.
			b.log.Warn("refresh failed", logError, err)
			return
		}
		b.switchTo(old, c)
	}()
}

// switchTo makes c current in place of old. Writes are held until the
// server has answered old's close, which it does only after processing
// everything old carried: no audio sent on c can overtake audio on old.
func (b *base) switchTo(old, c *conn) {
	b.hookAt("switch")
	b.switchMu.Lock()
	defer b.switchMu.Unlock()
	b.sendMu.Lock()
	b.mu.Lock()
	if b.cur != old || b.stopped {
		b.mu.Unlock()
		b.sendMu.Unlock()
		c.closeNormally()
		return
	}
	b.cur, b.switching = c, true
	b.notifyLocked()
	b.mu.Unlock()
	b.sendMu.Unlock()
	b.hookAt("switching")
	clean := old.closeNormally()
	b.install(c, clean, false)
	b.log.Debug("refreshed connection", "clean", clean)
}

// write sends p on the current connection, in order with other writes. While
// a refresh switches connections it holds p and returns at once; while
// reconnecting it waits for the new connection or ctx.
func (b *base) write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	return b.writeThen(ctx, typ, p, nil)
}

// writeThen is write, calling written with writes still held and p (or a
// copy, valid during the call): with held set when p is held for c, the
// connection a refresh switches to, and with held unset once p went to c,
// successfully or not.
func (b *base) writeThen(ctx context.Context, typ websocket.MessageType, p []byte, written func(c *conn, p []byte, held bool)) error {
	for {
		b.sendMu.Lock()
		b.mu.Lock()
		c, switching, changed, stopped := b.cur, b.switching, b.changed, b.stopped
		b.mu.Unlock()
		next := c // while switching, the connection held writes go to
		if c != nil && c.isDone() {
			c = nil // lost; the run loop is about to replace it
		}
		switch {
		case stopped:
			b.sendMu.Unlock()
			return ErrClosed
		case switching:
			if len(b.pending) >= maxPending {
				b.sendMu.Unlock()
				return errors.New("pentecost: too many messages held during a connection refresh")
			}
			b.pending = append(b.pending, pendingWrite{typ: typ, p: bytes.Clone(p), written: written})
			if written != nil {
				written(next, p, true)
			}
			b.sendMu.Unlock()
			return nil
		case c != nil:
			err := c.ws.Write(ctx, typ, p)
			if written != nil {
				written(c, p, false)
			}
			b.sendMu.Unlock()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// Make sure the run loop notices, so later writes wait for
				// the next connection instead of failing one by one.
				_ = c.ws.CloseNow()
				return fmt.Errorf("%w: %w", errConnLost, err)
			}
			return nil
		}
		b.sendMu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-b.done:
			return ErrClosed
		}
	}
}

// handleText hands a message to the role, one at a time.
func (b *base) handleText(c *conn, m *wireMsg) {
	b.cbMu.Lock()
	defer b.cbMu.Unlock()
	b.role.handle(c, m)
}

func (b *base) handleBinary(c *conn, p []byte) {
	b.cbMu.Lock()
	defer b.cbMu.Unlock()
	b.role.handleBinary(c, p)
}

// handleError passes an error to OnError.
func (b *base) handleError(err error) {
	if b.onError == nil {
		return
	}
	b.cbMu.Lock()
	defer b.cbMu.Unlock()
	b.onError(err)
}

// markEnded records that the session ended: the run loop stops when the
// connection closes instead of reconnecting.
func (b *base) markEnded() {
	b.mu.Lock()
	b.ended = true
	b.mu.Unlock()
}

// stop records why the client stops.
func (b *base) stop(err error) {
	b.mu.Lock()
	if !b.stopped {
		b.stopped, b.err = true, err
		b.notifyLocked()
	}
	b.mu.Unlock()
	b.cancel()
}

// finish closes the remaining connections and marks the client done.
func (b *base) finish() {
	b.stop(ErrClosed)
	b.mu.Lock()
	c := b.cur
	b.cur = nil
	var others []*conn
	for x := range b.conns {
		if x != c {
			others = append(others, x)
		}
	}
	b.mu.Unlock()
	if c != nil {
		c.closeNormally()
	}
	for _, x := range others {
		_ = x.ws.CloseNow()
	}
	b.wg.Wait()
	close(b.done)
}

// close stops the client and waits until its connections are closed.
func (b *base) close() error {
	if b.done == nil {
		return nil // never opened
	}
	b.stop(ErrClosed)
	<-b.done
	return nil
}

// errValue returns why the client stopped.
func (b *base) errValue() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
