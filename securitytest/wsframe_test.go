package securitytest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/servertest"
	dto "github.com/prometheus/client_model/go"
)

// Attacks on the WebSocket framing (issue 13, items 3, 7 and 8): frames
// that announce more than they send, frames that never finish, text that
// is not UTF-8, impossible lengths, and a listener that stops reading.
// Every client here is a raw TCP connection writing hand-built frames, so
// that nothing between the test and the server tidies the attack up.

// rawWait is how long a test waits for something that should happen at once.
const rawWait = 5 * time.Second

// TestAttack_AnnouncedHugeFrameCostsNothing: a frame header announcing
// 1 MiB, then silence, used to make the server allocate the whole MiB and
// hold it until the heartbeat timeout (300 such connections took the heap
// from 11 to 305 MB). The announced length must cost nothing until the
// bytes arrive.
func TestAttack_AnnouncedHugeFrameCostsNothing(t *testing.T) {
	const n = 200
	srv := servertest.Start(t, servertest.Configure(func(s *realtime.Server) {
		s.FrameTimeout = time.Hour // the memory is what is measured here, not the frame deadline
	}))
	sess := srv.CreateSession("alice", "en")
	sp, l := rawSpeakerAndListener(t, srv, sess)

	attackers := make([]*rawConn, n)
	for i := range attackers {
		attackers[i] = rawDialListener(t, srv, sess)
	}
	base := rawHeapInUse()
	for _, a := range attackers {
		a.write(frameHeader(true, opText, realtime.DefaultReadLimit))
	}
	// Only once every reader is past its header has the server seen every
	// announced length.
	servertest.Poll(t, rawWait, "every attacker's header to be read", func() bool { return rawReadersPastHeader() >= n })
	grown := rawHeapInUse() - base
	if limit := int64(n * 64 << 10); grown > limit {
		t.Fatalf("heap grew by %d KiB for %d announced frames of 1 MiB, want under %d KiB", grown>>10, n, limit>>10)
	}
	t.Logf("heap grew by %d KiB for %d announced frames of 1 MiB", grown>>10, n)

	for _, a := range attackers {
		a.close()
	}
	rawSessionCarriesOn(t, sp, l)
}

// TestAttack_StalledFrameIsClosed: a frame or a fragmented message begun
// and never finished held its connection's reader until the heartbeat
// timeout, however it was kept warm. It is closed with 4000 once
// FrameTimeout has passed, while a client that is merely quiet between
// messages is left alone.
func TestAttack_StalledFrameIsClosed(t *testing.T) {
	const frameTimeout = 500 * time.Millisecond
	srv := servertest.Start(t, servertest.Configure(func(s *realtime.Server) { s.FrameTimeout = frameTimeout }))
	sess := srv.CreateSession("alice", "en")
	sp, l := rawSpeakerAndListener(t, srv, sess)

	// A quiet listener whose last message was fragmented, so that it took
	// the frame deadline: the deadline must not outlive the message. One
	// write, so that the message cannot stall on a busy machine.
	quiet := rawDialListener(t, srv, sess)
	quiet.write(append(frameBytes(false, opText, []byte(`{"action":`)),
		frameBytes(true, opContinuation, []byte(`"heartbeat"}`))...))
	quiet.expectType("heartbeatAck")
	quietSince := time.Now()

	for _, tt := range []struct {
		name   string
		attack func(a *rawConn, closed <-chan struct{})
	}{
		{"FrameHalfSent", func(a *rawConn, _ <-chan struct{}) {
			a.write(frameHeader(true, opText, 100))
			a.write(bytes.Repeat([]byte{'x'}, 10))
		}},
		{"HeaderOnly", func(a *rawConn, _ <-chan struct{}) {
			a.write(frameHeader(true, opBinary, 1000))
		}},
		{"FragmentWithoutEnd", func(a *rawConn, _ <-chan struct{}) {
			a.write(frameBytes(false, opText, []byte(`{"action":`)))
		}},
		{"FragmentKeptWarm", func(a *rawConn, closed <-chan struct{}) {
			// Pings and empty continuations, each a complete frame, must
			// not stretch the message's deadline.
			a.write(frameBytes(false, opText, []byte(`{"action":`)))
			go func() {
				tick := time.NewTicker(frameTimeout / 8)
				defer tick.Stop()
				for {
					select {
					case <-closed:
						return
					case <-tick.C:
						if a.tryWrite(append(frameBytes(true, opPing, nil), frameBytes(false, opContinuation, nil)...)) != nil {
							return
						}
					}
				}
			}()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := rawDialListener(t, srv, sess)
			closed := make(chan struct{})
			tt.attack(a, closed)
			code := a.expectClose()
			close(closed)
			if code != realtime.CloseIdle {
				t.Fatalf("close = %d, want %d", code, realtime.CloseIdle)
			}
		})
	}

	// Quiet for longer than the frame timeout is not stalled.
	time.Sleep(time.Until(quietSince.Add(2 * frameTimeout)))
	quiet.write(frameBytes(true, opText, []byte(`{"action":"heartbeat"}`)))
	quiet.expectType("heartbeatAck")
	rawSessionCarriesOn(t, sp, l)
}

// TestAttack_InvalidUTF8Text: text messages must be UTF-8 (RFC 6455 8.1);
// one that is not, whole or reassembled from fragments, closes its
// connection with 1007. A character split across fragments is valid.
func TestAttack_InvalidUTF8Text(t *testing.T) {
	srv := servertest.Start(t)
	sess := srv.CreateSession("alice", "en")
	sp, l := rawSpeakerAndListener(t, srv, sess)

	for _, tt := range []struct {
		name   string
		frames [][]byte
	}{
		{"Frame", [][]byte{frameBytes(true, opText, []byte("{\"action\":\"heartbeat\",\"x\":\"\xff\"}"))}},
		{"Surrogate", [][]byte{frameBytes(true, opText, []byte("{\"action\":\"heartbeat\",\"x\":\"\xed\xa0\x80\"}"))}},
		{"Overlong", [][]byte{frameBytes(true, opText, []byte("{\"action\":\"heartbeat\",\"x\":\"\xc0\xaf\"}"))}},
		{"Fragmented", [][]byte{
			frameBytes(false, opText, []byte(`{"action":"heartbeat",`)),
			frameBytes(true, opContinuation, []byte("\"x\":\"\xce\xba\xff\"}")),
		}},
		{"TruncatedAtEnd", [][]byte{
			frameBytes(false, opText, []byte(`{"action":"heartbeat"}`)),
			frameBytes(true, opContinuation, []byte("\xce")),
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := rawDialListener(t, srv, sess)
			for _, f := range tt.frames {
				a.write(f)
			}
			if code := a.expectClose(); code != realtime.CloseInvalidData {
				t.Fatalf("close = %d, want %d", code, realtime.CloseInvalidData)
			}
		})
	}

	t.Run("SplitCharacterIsValid", func(t *testing.T) {
		c := rawDialListener(t, srv, sess)
		msg := []byte(`{"action":"heartbeat","x":"κόσμε"}`)
		cut := bytes.IndexByte(msg, 0xba) // inside κ, whose two bytes are 0xce 0xba
		c.write(frameBytes(false, opText, msg[:cut]))
		c.write(frameBytes(false, opContinuation, nil))
		c.write(frameBytes(true, opContinuation, msg[cut:]))
		c.expectType("heartbeatAck")
	})
	rawSessionCarriesOn(t, sp, l)
}

// TestAttack_InvalidUTF8CloseReason: a close frame's reason must be UTF-8
// too; the server answers one that is not with 1007 instead of echoing the
// peer's code (Autobahn 7.5.1).
func TestAttack_InvalidUTF8CloseReason(t *testing.T) {
	srv := servertest.Start(t)
	sess := srv.CreateSession("alice", "en")
	sp, l := rawSpeakerAndListener(t, srv, sess)

	for _, tt := range []struct {
		name   string
		reason string
		want   int
	}{
		{"Invalid", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", realtime.CloseInvalidData},
		{"Valid", "κόσμε", realtime.CloseNormal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := rawDialListener(t, srv, sess)
			body := binary.BigEndian.AppendUint16(nil, realtime.CloseNormal)
			a.write(frameBytes(true, opClose, append(body, tt.reason...)))
			if code := a.expectClose(); code != tt.want {
				t.Fatalf("close = %d, want %d", code, tt.want)
			}
		})
	}
	rawSessionCarriesOn(t, sp, l)
}

// TestAttack_LengthMSBSet: a 64-bit payload length with its most
// significant bit set is broken framing (RFC 6455 5.2) and closes with
// 1002, not with the 1000 of a normal close.
func TestAttack_LengthMSBSet(t *testing.T) {
	srv := servertest.Start(t)
	sess := srv.CreateSession("alice", "en")
	sp, l := rawSpeakerAndListener(t, srv, sess)

	for _, op := range []byte{opText, opBinary, opContinuation} {
		t.Run(fmt.Sprintf("Opcode%d", op), func(t *testing.T) {
			a := rawDialListener(t, srv, sess)
			a.write(frameHeader(true, op, 1<<63|5))
			a.write([]byte("hello"))
			if code := a.expectClose(); code != realtime.CloseProtocol {
				t.Fatalf("close = %d, want %d", code, realtime.CloseProtocol)
			}
		})
	}
	rawSessionCarriesOn(t, sp, l)
}

// TestAttack_SlowListenerWriteTimeout: a listener that stops reading while
// its queue stays short of overflowing is dropped when a write has been
// blocked for WriteTimeout. It used to go silently and uncounted; it is
// told 4001, as a listener whose queue overflows is, and counted in
// pentecost_ws_slow_disconnects_total.
func TestAttack_SlowListenerWriteTimeout(t *testing.T) {
	srv := servertest.Start(t, servertest.Configure(func(s *realtime.Server) {
		s.WriteTimeout = time.Second
		s.QueueFrames = 10000 // the queue never overflows: only the write timeout can act
		s.CloseTimeout = rawWait
	}))
	sess := srv.CreateSession("alice", "en")
	sp, l := rawSpeakerAndListener(t, srv, sess)

	// Small socket buffers on both sides, so that a few frames fill them.
	slow := rawDial(t, srv, "sessionId="+sess.ID+"&targetLanguage=en", false)
	slow.readTo("sessionJoined") // then no more: the audio must find it joined
	conns := srv.Conns()
	if err := errors.Join(slow.nc.(*net.TCPConn).SetReadBuffer(4096),
		conns[len(conns)-1].(*net.TCPConn).SetWriteBuffer(4096)); err != nil {
		t.Fatal(err)
	}
	if got := rawSlowCount(t, srv); got != 0 {
		t.Fatalf("slow disconnects before the attack = %v", got)
	}

	chunk := bytes.Repeat([]byte{1, 2, 3, 4}, pentecost.MaxAudioChunk/4)
	for range 5 { // 5 × 43 KB of JSON: far more than the buffers hold
		sp.write(frameBytes(true, opBinary, chunk))
	}
	servertest.Poll(t, rawWait, "the slow listener to be counted", func() bool { return rawSlowCount(t, srv) >= 1 })

	// The server finishes the frame it was cut off in and sends the close.
	slow.startReading()
	if code := slow.expectClose(); code != realtime.CloseSlow {
		t.Fatalf("close = %d, want %d", code, realtime.CloseSlow)
	}
	rawSessionCarriesOn(t, sp, l)
}

// WebSocket opcodes.
const (
	opContinuation byte = 0x0
	opText         byte = 0x1
	opBinary       byte = 0x2
	opClose        byte = 0x8
	opPing         byte = 0x9
	opPong         byte = 0xA
)

// frameMask is the masking key of every frame these clients send.
var frameMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// frameHeader builds a masked client frame header announcing length bytes
// of payload. A length over 0xFFFF, however absurd, goes in the 64-bit form
// as is.
func frameHeader(fin bool, op byte, length uint64) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	h := []byte{b0, 0}
	switch {
	case length < 126:
		h[1] = 0x80 | byte(length)
	case length <= 0xFFFF:
		h[1] = 0x80 | 126
		h = binary.BigEndian.AppendUint16(h, uint16(length))
	default:
		h[1] = 0x80 | 127
		h = binary.BigEndian.AppendUint64(h, length)
	}
	return append(h, frameMask[:]...)
}

// frameBytes builds a whole masked client frame.
func frameBytes(fin bool, op byte, payload []byte) []byte {
	b := frameHeader(fin, op, uint64(len(payload)))
	for i, c := range payload {
		b = append(b, c^frameMask[i%4])
	}
	return b
}

// rawFrame is one frame from the server, which does not mask.
type rawFrame struct {
	op      byte
	payload []byte
}

// frameRead reads one server frame.
func frameRead(r io.Reader) (rawFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return rawFrame{}, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return rawFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return rawFrame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[1]&0x80 != 0 || n > 4<<20 {
		return rawFrame{}, fmt.Errorf("server frame masked or of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return rawFrame{}, err
	}
	return rawFrame{op: h[0] & 0x0f, payload: p}, nil
}

// rawConn is a client on a raw TCP connection: the test writes bytes, and
// a reader goroutine, once started, hands over the server's frames.
type rawConn struct {
	t      testing.TB
	nc     net.Conn
	br     *bufio.Reader
	wmu    sync.Mutex
	frames chan rawFrame // closed when the connection ends
	once   sync.Once
}

// rawDialListener joins sess as a listener in English and waits for
// sessionJoined.
func rawDialListener(t testing.TB, srv *servertest.Server, sess *pentecost.Session) *rawConn {
	t.Helper()
	c := rawDial(t, srv, "sessionId="+sess.ID+"&targetLanguage=en", true)
	c.expectType("sessionJoined")
	return c
}

// rawSpeakerAndListener connects sess's speaker and one listener, the
// well-behaved clients that must carry on through each attack.
func rawSpeakerAndListener(t testing.TB, srv *servertest.Server, sess *pentecost.Session) (sp, l *rawConn) {
	t.Helper()
	sp = rawDial(t, srv, "sessionId="+sess.ID+"&token="+url.QueryEscape(srv.Token("alice")), true)
	sp.expectType("speakerConnected")
	return sp, rawDialListener(t, srv, sess)
}

// rawSessionCarriesOn checks that l still hears sp, and both still get
// answers.
func rawSessionCarriesOn(t testing.TB, sp, l *rawConn) {
	t.Helper()
	chunk := bytes.Repeat([]byte{9, 8, 7, 6}, 160)
	sp.write(frameBytes(true, opBinary, chunk))
	l.expectType("audioData")
	for _, c := range []*rawConn{sp, l} {
		c.write(frameBytes(true, opText, []byte(`{"action":"heartbeat"}`)))
		c.expectType("heartbeatAck")
	}
}

// rawDial opens a WebSocket to srv with query; the reader goroutine starts
// at once when read is set.
func rawDial(t testing.TB, srv *servertest.Server, query string, read bool) *rawConn {
	t.Helper()
	u, err := url.Parse(srv.WSURL)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	c := &rawConn{t: t, nc: nc, br: bufio.NewReader(nc), frames: make(chan rawFrame, 1024)}
	t.Cleanup(c.close)
	req := "GET " + u.Path + "?" + query + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13" +
		"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	_ = nc.SetDeadline(time.Now().Add(rawWait))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	_ = nc.SetDeadline(time.Time{})
	if read {
		c.startReading()
	}
	return c
}

// startReading starts the reader goroutine. It answers the server's close
// frame with the same code, as a client should, and then stops.
func (c *rawConn) startReading() {
	c.once.Do(func() {
		go func() {
			defer close(c.frames)
			for {
				f, err := frameRead(c.br)
				if err != nil {
					return
				}
				c.frames <- f
				if f.op == opClose {
					_ = c.tryWrite(frameBytes(true, opClose, f.payload[:min(2, len(f.payload))]))
					return
				}
			}
		}()
	})
}

// readTo reads frames itself, before the reader goroutine starts, up to a
// JSON message of type typ.
func (c *rawConn) readTo(typ string) {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(rawWait))
	defer func() { _ = c.nc.SetReadDeadline(time.Time{}) }()
	for {
		f, err := frameRead(c.br)
		if err != nil {
			c.t.Fatalf("waiting for %q: %v", typ, err)
		}
		var m struct{ Type string }
		if f.op == opText && json.Unmarshal(f.payload, &m) == nil && m.Type == typ {
			return
		}
	}
}

// write sends raw bytes, failing the test if they cannot be sent.
func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if err := c.tryWrite(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) tryWrite(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(rawWait))
	_, err := c.nc.Write(b)
	return err
}

func (c *rawConn) close() { _ = c.nc.Close() }

// expectType skips frames until a JSON text message of type typ.
func (c *rawConn) expectType(typ string) {
	c.t.Helper()
	deadline := time.After(rawWait)
	for {
		select {
		case f, ok := <-c.frames:
			switch {
			case !ok:
				c.t.Fatalf("connection ended waiting for %q", typ)
			case f.op == opClose:
				c.t.Fatalf("closed with %d waiting for %q", rawCloseCode(f), typ)
			case f.op == opText:
				var m struct{ Type string }
				if json.Unmarshal(f.payload, &m) == nil && m.Type == typ {
					return
				}
			}
		case <-deadline:
			c.t.Fatalf("no %q within %s", typ, rawWait)
		}
	}
}

// expectClose skips frames until the server's close frame and returns its
// code. Every frame before it must parse: the stream was not cut mid-frame.
func (c *rawConn) expectClose() int {
	c.t.Helper()
	deadline := time.After(rawWait)
	for {
		select {
		case f, ok := <-c.frames:
			if !ok {
				c.t.Fatal("connection ended without a close frame")
			}
			if f.op == opClose {
				return rawCloseCode(f)
			}
		case <-deadline:
			c.t.Fatalf("no close frame within %s", rawWait)
		}
	}
}

func rawCloseCode(f rawFrame) int {
	if len(f.payload) < 2 {
		return 1005 // no status
	}
	return int(binary.BigEndian.Uint16(f.payload))
}

// rawHeapInUse returns the live heap after a collection. The server runs
// in this process, so its memory is the test's.
func rawHeapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// rawReadersPastHeader counts the server's connection readers that have
// read a frame header and wait for what it announced. There is no
// client-visible sign that the server has read a header, so the goroutine
// stacks are asked.
func rawReadersPastHeader() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "realtime.(*conn).readMessage(") && !strings.Contains(g, "ws.ReadHeaderBuffer(") {
			count++
		}
	}
	return count
}

// rawSlowCount reads pentecost_ws_slow_disconnects_total.
func rawSlowCount(t testing.TB, srv *servertest.Server) float64 {
	t.Helper()
	mfs, err := srv.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "pentecost_ws_slow_disconnects_total" {
			return rawCounterSum(mf.GetMetric())
		}
	}
	t.Fatal("pentecost_ws_slow_disconnects_total not registered")
	return 0
}

func rawCounterSum(ms []*dto.Metric) float64 {
	var sum float64
	for _, m := range ms {
		sum += m.GetCounter().GetValue()
	}
	return sum
}
