// Package wsclient is the WebSocket client the streaming recognisers
// (worker/vosk, worker/deepgram) share: a dial that reports refusals with
// their status and Retry-After, one reader, serialised writers with a
// stall deadline, and engine error codes for what goes wrong.
package wsclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pentecost/pentecost/worker/engine"
)

// Conn is the client end of one WebSocket: one reader (the stream's
// goroutine) and writers serialised by WriteMu, control replies included.
type Conn struct {
	conn    net.Conn
	rd      *wsutil.Reader
	ctl     wsutil.FrameHandlerFunc
	WriteMu sync.Mutex
}

// HandshakeError is a refused WebSocket handshake.
type HandshakeError struct {
	status     int
	retryAfter time.Duration
}

func (e *HandshakeError) Error() string { return "handshake: HTTP " + strconv.Itoa(e.status) }

// dial opens a WebSocket to url with the extra request header h.
func Dial(ctx context.Context, url string, h http.Header, timeout time.Duration) (*Conn, error) {
	var herr *HandshakeError
	d := ws.Dialer{
		Timeout: timeout,
		OnStatusError: func(status int, _ []byte, resp io.Reader) {
			herr = &HandshakeError{status: status}
			// Only the headers are read: the body may never end.
			if r, err := http.ReadResponse(bufio.NewReader(resp), nil); err == nil {
				herr.retryAfter = engine.RetryAfter(r.Header.Get("Retry-After"), time.Now())
			}
		},
	}
	if len(h) > 0 {
		d.Header = ws.HandshakeHeaderHTTP(h)
	}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		if herr != nil {
			return nil, herr
		}
		return nil, err
	}
	c := &Conn{conn: conn}
	var src io.Reader = conn
	if br != nil { // frames that arrived with the handshake
		src = br
	}
	c.ctl = wsutil.ControlFrameHandler(lockedWriter{c}, ws.StateClientSide)
	c.rd = &wsutil.Reader{Source: src, State: ws.StateClientSide, CheckUTF8: true, OnIntermediate: c.ctl, MaxFrameSize: MaxMessage}
	return c, nil
}

// MaxMessage is the largest message a server may send, in bytes.
const MaxMessage = 1 << 20

// ErrTooLarge is returned by Next for a message over MaxMessage.
var ErrTooLarge = errors.New("message from the server over 1 MiB")

// lockedWriter lets the control-frame handler answer pings and closes
// between the stream's own writes; each frame is one Write.
type lockedWriter struct{ c *Conn }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.WriteMu.Lock()
	defer w.c.WriteMu.Unlock()
	return w.c.conn.Write(p)
}

// next returns the next data message, answering control frames on the way;
// a close frame from the server comes back as wsutil.ClosedError.
func (c *Conn) Next() ([]byte, ws.OpCode, error) {
	for {
		hdr, err := c.rd.NextFrame()
		if err != nil {
			return nil, 0, err
		}
		if hdr.OpCode.IsControl() {
			if err := c.ctl(hdr, c.rd); err != nil {
				return nil, 0, err
			}
			continue
		}
		// A recogniser's answer is a few hundred bytes of JSON; a server
		// that sends more (broken, or someone in the middle of ws://) must
		// not run the worker out of memory.
		p, err := io.ReadAll(io.LimitReader(c.rd, MaxMessage+1))
		if err == nil && len(p) > MaxMessage {
			err = ErrTooLarge
		}
		return p, hdr.OpCode, err
	}
}

// write sends one message; stall bounds a write the server does not read.
// The caller holds WriteMu.
func (c *Conn) Write(op ws.OpCode, p []byte, stall time.Duration) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(stall))
	return wsutil.WriteClientMessage(c.conn, op, p)
}

// close says goodbye with a normal close frame, best effort, and drops the
// connection.
func (c *Conn) Close() {
	c.WriteMu.Lock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	c.WriteMu.Unlock()
	_ = c.conn.Close()
}

// dialError gives a failed dial its engine code.
func DialError(ctx context.Context, name string, err error) error {
	e := &engine.Error{Engine: name, Code: engine.ErrUnavailable, Err: err}
	var herr *HandshakeError
	switch {
	case errors.As(err, &herr):
		switch {
		case herr.status == http.StatusTooManyRequests:
			e.Code, e.RetryAfter = engine.ErrThrottled, herr.retryAfter
		case herr.status == http.StatusServiceUnavailable && herr.retryAfter > 0:
			e.RetryAfter = herr.retryAfter
		case herr.status >= 400 && herr.status < 500:
			e.Code = engine.ErrRefused
		}
	case ctx.Err() != nil:
		return CtxError(ctx, name)
	case IsTimeout(err):
		e.Code = engine.ErrTimeout
	}
	return e
}

// ctxError is the stream's error when its context ends: a deadline is a
// timeout, a cancellation is passed on as it is.
func CtxError(ctx context.Context, name string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &engine.Error{Engine: name, Code: engine.ErrTimeout, Err: ctx.Err()}
	}
	return ctx.Err()
}

func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readError gives a failed read its engine code.
func ReadError(name string, err error) error {
	var ce wsutil.ClosedError
	switch {
	case IsTimeout(err):
		return &engine.Error{Engine: name, Code: engine.ErrTimeout, Err: errors.New("no answer from the server in time")}
	case errors.As(err, &ce):
		return &engine.Error{Engine: name, Code: engine.ErrUnavailable, Err: fmt.Errorf("server closed the stream: %d %s", ce.Code, ce.Reason)}
	case errors.Is(err, ErrTooLarge), errors.Is(err, wsutil.ErrFrameTooLarge):
		return &engine.Error{Engine: name, Code: engine.ErrBadResponse, Err: err}
	default:
		return &engine.Error{Engine: name, Code: engine.ErrUnavailable, Err: err}
	}
}

// SetReadDeadline bounds the wait for the server's next message: a
// stream that owes an answer sets it, so that a stalled server is noticed.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// Abort closes the connection at once, without a close frame: a reader
// blocked in Next returns.
func (c *Conn) Abort() error { return c.conn.Close() }
