package realtime

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/opuspcm"
)

// role is what a connection is for.
type role uint8

const (
	roleListener role = iota + 1
	roleSpeaker
	roleWorker
)

func (r role) String() string {
	switch r {
	case roleListener:
		return "listener"
	case roleSpeaker:
		return "speaker"
	case roleWorker:
		return "worker"
	}
	return "unknown"
}

// conn is one WebSocket connection. Its reader is the HTTP handler's
// goroutine; its writer runs only while something is queued (writer.go).
type conn struct {
	srv    *Server
	id     string // sent to the client
	logID  string // hashed id for logs
	role   role
	nc     net.Conn
	br     *bufio.Reader
	binary bool
	log    *slog.Logger

	opened   time.Time
	lastRead atomic.Int64 // Unix nanoseconds of the last frame received

	// Timer state, touched only by the server's ticker.
	lastPing, lastStatus time.Time
	warnedSent           bool
	refreshSent          atomic.Bool // a refresh was asked for
	refreshDelivered     atomic.Bool // ... and queued, exactly once

	// Write state (writer.go), guarded by wmu.
	wmu           sync.Mutex
	queue, spare  []*wsMsg
	writing       bool
	holding       bool // the queue ends with held audio (hubStream.deliver)
	closing, dead bool
	closeWritten  bool
	closeCode     int
	drops         int
	flushed       chan struct{}
	flushedClosed bool
	wdeadline     time.Time       // write deadline last set (writer goroutine only)
	raw           syscall.RawConn // the socket, for tryWrite (writer only)

	// The socket's descriptor, for a ring pass (sendring.go): fd and
	// fdSet are the writer's; fdmu is held for reading while the kernel
	// may send on fd, and fdClosed set under it before the socket closes.
	fd       int
	fdSet    bool
	fdmu     sync.RWMutex
	fdClosed bool

	// Role state, guarded by the hub locks noted in hub.go.
	session  *hubSession
	language string // listener: the language it hears
	// codec is the stream a listener takes in its language, or what a
	// speaker sends: pentecost.CodecPCM or CodecOpus.
	codec  string
	paused atomic.Bool
	user   *pentecost.User   // speaker
	audio  *audioCheck       // speaker: microphone checks (reader only)
	worker *pentecost.Worker // worker
	wstate *workerState      // worker

	// restored is set on a speaker that came back within the grace period
	// or refreshed: it is owed a stateRestored.
	restored bool

	// readDone is closed once the reader has handled the connection's last
	// message. holdAudioFor, on a refreshing speaker, is the old
	// connection's readDone: its audio waits for it (reader only).
	readDone     chan struct{}
	holdAudioFor <-chan struct{}
	// opus decodes an Opus speaker's packets for the PCM stream, once for
	// every listener and worker (reader only).
	opus *opuspcm.Decoder

	// unread is the payload left of a frame refused as too big or cut
	// short (reader only).
	unread int64

	// rdeadline is the frame deadline in force, zero when none (reader
	// only; see readMessage).
	rdeadline time.Time

	// peerClosed is set when the client sent its close frame (reader only).
	peerClosed bool

	// joined is set once the join succeeded; role state is then fixed and
	// the ticker may look at it.
	joined atomic.Bool

	// ended is set when the session ended, so teardown neither starts a
	// grace period nor counts a leave twice.
	ended atomic.Bool
}

func newConnID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "c-" + hex.EncodeToString(b[:])
}

// hashID returns a short SHA-256 of a connection id for logs, so that log
// readers cannot impersonate or target a connection.
func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6])
}

func (s *Server) newConn(nc net.Conn, br *bufio.Reader, r role, binaryAudio bool) *conn {
	c := &conn{
		srv:      s,
		id:       newConnID(),
		role:     r,
		nc:       nc,
		br:       br,
		binary:   binaryAudio,
		flushed:  make(chan struct{}),
		readDone: make(chan struct{}),
	}
	now := s.Now()
	c.opened, c.lastPing, c.lastStatus = now, now, now
	c.lastRead.Store(time.Now().UnixNano())
	c.logID = hashID(c.id)
	c.log = s.Logger.With(logConn, c.logID, logRole, r.String())
	return c
}

// errTooBig ends the read loop when a message exceeds the read limit.
var errTooBig = errors.New("message too big")

// errInvalidUTF8 ends the read loop when a text message is not UTF-8.
var errInvalidUTF8 = errors.New("text message not UTF-8")

// readChunk is the most memory a frame's announced length may claim ahead
// of its bytes. A header announcing 1 MiB used to allocate the MiB at once
// and hold it until the heartbeat timeout: 300 such 17-byte writes took the
// heap from 11 to 305 MB. Every message our clients send (20 ms of audio,
// under 1 KB even in base64) still takes one allocation.
const readChunk = 16 << 10

// errPeerClosed ends the read loop when the client sent a close frame.
var errPeerClosed = errors.New("peer closed")

// readMessage reads one whole data message, answering control frames on
// the way. Fragmented messages are reassembled up to ReadLimit bytes.
//
// Once a frame's header has arrived, the rest of its message must follow
// within FrameTimeout. The deadline is not cleared when a message ends:
// setting and clearing it for each of a speaker's 50 frames a second cost
// 280 ns a frame, half of what reading it costs. It is renewed at the start of a
// message when less than half of it is left, and dropped when it expires
// between messages, so a message gets between FrameTimeout/2 and
// FrameTimeout, and a quiet client is the heartbeat timeout's business.
func (c *conn) readMessage() (op ws.OpCode, payload []byte, err error) {
	var hb [ws.MaxHeaderSize - 2]byte
	var state ws.State = ws.StateServerSide
	for {
		if !c.rdeadline.IsZero() && !state.Is(ws.StateFragmented) {
			if err := c.awaitMessage(); err != nil {
				return 0, nil, err
			}
		}
		h, err := ws.ReadHeaderBuffer(c.br, hb[:0])
		if err != nil {
			return 0, nil, err
		}
		now := time.Now()
		c.lastRead.Store(now.UnixNano())
		if err := ws.CheckHeader(h, state); err != nil {
			return 0, nil, err
		}
		if c.srv.FrameTimeout > 0 && !state.Is(ws.StateFragmented) {
			switch {
			case c.rdeadline.IsZero() && (!h.Fin || int64(c.br.Buffered()) < h.Length):
				// Only a frame whose rest is still to come, or that
				// begins a fragmented message, can stall.
				c.rdeadline = now.Add(c.srv.FrameTimeout)
				c.setReadDeadline(c.rdeadline)
			case !c.rdeadline.IsZero() && c.rdeadline.Sub(now) < c.srv.FrameTimeout/2:
				c.rdeadline = now.Add(c.srv.FrameTimeout)
				c.setReadDeadline(c.rdeadline)
			}
		}
		if h.OpCode.IsControl() {
			var p [ws.MaxControlFramePayloadSize]byte
			body := p[:h.Length]
			if _, err := io.ReadFull(c.br, body); err != nil {
				return 0, nil, err
			}
			ws.Cipher(body, h.Mask, 0)
			switch h.OpCode {
			case ws.OpPing:
				c.enqueue(controlMsg(opPong, body))
			case ws.OpClose:
				code := CloseNormal
				if len(body) >= 2 {
					code = int(binary.BigEndian.Uint16(body))
				}
				switch {
				case len(body) == 1 || !validCloseCode(code):
					code = CloseProtocol // RFC 6455 7.4: not a code a peer may send
				case len(body) > 2 && !utf8.Valid(body[2:]):
					code = CloseInvalidData // RFC 6455 5.5.1: the reason is UTF-8
				}
				c.closeWith(code, "")
				c.peerClosed = true
				return 0, nil, errPeerClosed
			}
			continue
		}
		// Written so that it cannot overflow: a 63-bit frame length added
		// to a fragment already read wrapped negative and passed.
		if h.Length < 0 || h.Length > c.srv.ReadLimit-int64(len(payload)) {
			c.unread = h.Length // linger discards it, so the close is not a reset
			return 0, nil, errTooBig
		}
		if h.OpCode != ws.OpContinuation {
			op = h.OpCode
		}
		start := len(payload)
		if payload, err = c.readPayload(payload, h.Length); err != nil {
			return 0, nil, err
		}
		ws.Cipher(payload[start:], h.Mask, 0)
		if h.Fin {
			if op == ws.OpText && !utf8.Valid(payload) {
				return 0, nil, errInvalidUTF8
			}
			return op, payload, nil
		}
		state = state.Set(ws.StateFragmented)
	}
}

// awaitMessage waits for the first byte of a message while the deadline
// of an earlier one is in force, and drops the deadline if it expires
// first. readMessage renews it once the header is read; so that the header
// itself cannot run into a deadline about to expire, it is renewed here
// when the header may still be on its way (time.Now costs 100 ns on our
// servers, too much to read it twice a frame).
func (c *conn) awaitMessage() error {
	if _, err := c.br.Peek(1); err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		c.rdeadline = time.Time{}
		c.setReadDeadline(time.Time{})
		return nil
	}
	if c.br.Buffered() < ws.MaxHeaderSize {
		if now := time.Now(); c.rdeadline.Sub(now) < c.srv.FrameTimeout/2 {
			c.rdeadline = now.Add(c.srv.FrameTimeout)
			c.setReadDeadline(c.rdeadline)
		}
	}
	return nil
}

// setReadDeadline sets the read deadline unless a close frame has been
// written: from then on the writer's wait for the reply (writeLoop) is the
// deadline that counts.
func (c *conn) setReadDeadline(t time.Time) {
	c.wmu.Lock()
	if !c.closeWritten {
		_ = c.nc.SetReadDeadline(t)
	}
	c.wmu.Unlock()
}

// readPayload appends n bytes of payload to p. Memory follows the bytes
// that arrive, not the length announced: nothing before the first byte,
// at most readChunk then, and the buffer doubles as it fills.
func (c *conn) readPayload(p []byte, n int64) ([]byte, error) {
	if n == 0 {
		return p, nil
	}
	if _, err := c.br.Peek(1); err != nil {
		c.unread = n
		return p, err
	}
	end := len(p) + int(n) // n is within ReadLimit
	for len(p) < end {
		if len(p) == cap(p) {
			// Exactly what is wanted: append would round up to 25 % more.
			np := make([]byte, len(p), len(p)+min(max(readChunk, len(p)), end-len(p)))
			p = np[:copy(np, p)]
		}
		k, err := io.ReadFull(c.br, p[len(p):min(cap(p), end)])
		p = p[:len(p)+k]
		if err != nil {
			c.unread = int64(end - len(p))
			return p, err
		}
	}
	return p, nil
}

// validCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 section 7.4): the defined codes other than those reserved for
// local use (1004-1006, 1015), and the ranges for libraries and applications.
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	default:
		return code >= 3000 && code <= 4999
	}
}

// serve runs the read loop until the connection ends, then tears it down.
// A panic while reading or handling a message closes this connection with
// 1011 and is logged with its stack: one bad message must not take every
// other connection of the process down with it.
func (c *conn) serve(ctx context.Context, handle func(op ws.OpCode, p []byte)) {
	defer func() {
		close(c.readDone)
		c.shutdown()
	}()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic serving connection", "panic", r, "stack", string(debug.Stack()))
			c.srv.metrics.panics.Inc()
			c.closeWith(CloseInternal, "internal error")
		}
	}()
	for {
		op, p, err := c.readMessage()
		if err != nil {
			var perr ws.ProtocolError
			switch {
			case errors.Is(err, errTooBig):
				c.closeWith(CloseTooBig, "message too big")
			case errors.Is(err, errInvalidUTF8):
				c.closeWith(CloseInvalidData, "invalid UTF-8")
			case errors.As(err, &perr), errors.Is(err, ws.ErrHeaderLengthMSB), errors.Is(err, ws.ErrHeaderLengthUnexpected):
				c.closeWith(CloseProtocol, "protocol error")
			case errors.Is(err, os.ErrDeadlineExceeded):
				// Only the frame deadline expires before the connection is
				// closing (closeWith then does nothing): a message begun
				// and not finished.
				c.closeWith(CloseIdle, "frame timeout")
			}
			break
		}
		handle(op, p)
	}
}

// shutdown finishes the closing handshake as far as the peer allows and
// closes the socket. Safe to call more than once.
func (c *conn) shutdown() {
	c.closeWith(CloseNormal, "")
	select {
	case <-c.flushed:
	case <-time.After(c.srv.CloseTimeout):
	}
	if !c.peerClosed {
		c.linger()
	}
	c.wmu.Lock()
	c.dead = true
	c.wmu.Unlock()
	c.closeSocket()
}

// isClosing reports whether the connection is on its way out.
func (c *conn) isClosing() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.closing || c.dead
}

// linger waits briefly for the client's close frame, discarding anything
// else. Closing a socket with unread input makes the kernel send a reset,
// which can destroy our close frame before the client has read it.
func (c *conn) linger() {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.CloseTimeout))
	if _, err := io.CopyN(io.Discard, c.br, c.unread); err != nil {
		return
	}
	var hb [ws.MaxHeaderSize - 2]byte
	for {
		h, err := ws.ReadHeaderBuffer(c.br, hb[:0])
		if err != nil {
			return
		}
		if _, err := io.CopyN(io.Discard, c.br, h.Length); err != nil || h.OpCode == ws.OpClose {
			return
		}
	}
}
