package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// The benchmark's own listener connection. The Go client package is built
// for applications (reconnection, resume, every message decoded into a
// struct); at 100,000 deliveries/s its per-frame work made the generator
// cost 7.3 µs of CPU per delivery, as much as the server it measures. This
// one reads straight from the socket into one reused buffer, parses only
// the WebSocket header and the bytes that carry the timing, and allocates
// nothing per frame. It does not reconnect: a lost connection is counted.

// leanBufSize is a connection's initial read buffer: several 640 B frames,
// or one 100 ms chunk in JSON; it grows for larger frames.
const leanBufSize = 8 << 10

// leanConn is one listener connection of the benchmark.
type leanConn struct {
	url  string
	json bool
	opus bool
	lst  *listener
	// packet holds an Opus packet decoded from JSON's base64.
	packet []byte

	nc      net.Conn
	pending []byte // bytes the handshake reader had already buffered
	wmu     sync.Mutex
	closing bool // guarded by wmu
	done    chan struct{}
}

func newLeanConn(serverURL, sessionID, lang string, jsonMode, opus bool, lst *listener) (*leanConn, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	default:
		return nil, fmt.Errorf("bench: server URL must be http or ws, not %q", u.Scheme)
	}
	u.Path = "/ws"
	q := url.Values{"action": {"joinSession"}, "sessionId": {sessionID}, "targetLanguage": {lang}}
	if !jsonMode {
		q.Set("audioFormat", "binary")
	}
	if opus {
		q.Set("codec", "opus")
	}
	u.RawQuery = q.Encode()
	return &leanConn{url: u.String(), json: jsonMode, opus: opus, lst: lst, done: make(chan struct{})}, nil
}

// Open connects and waits for sessionJoined (or the refusal).
func (c *leanConn) Open(ctx context.Context) error {
	d := ws.Dialer{Timeout: 30 * time.Second}
	nc, br, _, err := d.Dial(ctx, c.url)
	if err != nil {
		return err
	}
	if br != nil {
		c.pending = make([]byte, br.Buffered())
		_, _ = br.Read(c.pending)
		ws.PutReader(br)
	}
	c.nc = nc
	joined := make(chan error, 1)
	go c.read(joined)
	select {
	case err := <-joined:
		if err != nil {
			<-c.done
		}
		return err
	case <-ctx.Done():
		_ = c.Close()
		return ctx.Err()
	}
}

// Close ends the connection (with a close frame) and waits for its reader.
func (c *leanConn) Close() error {
	if c.nc == nil {
		return nil
	}
	c.wmu.Lock()
	if !c.closing {
		c.closing = true
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
		_ = ws.WriteFrame(c.nc, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	}
	c.wmu.Unlock()
	_ = c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	<-c.done
	return nil
}

func (c *leanConn) write(f ws.Frame) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.closing {
		_ = ws.WriteFrame(c.nc, ws.MaskFrame(f))
	}
}

// read parses frames until the connection ends. joined receives nil once
// the server accepted the listener, or the reason it did not.
func (c *leanConn) read(joined chan<- error) {
	defer close(c.done)
	defer c.nc.Close()
	accepted := false
	fail := func(err error) {
		if !accepted {
			joined <- err
			return
		}
		c.wmu.Lock()
		closing := c.closing
		c.wmu.Unlock()
		if !closing {
			c.lst.lost.Add(1)
		}
	}
	buf := make([]byte, max(leanBufSize, len(c.pending)))
	w := copy(buf, c.pending)
	c.pending = nil
	r := 0
	now := time.Now().UnixNano()
	for {
		// Every complete frame in buf[r:w]; all of them arrived by now.
		for w-r >= 2 {
			b0, b1 := buf[r], buf[r+1]
			if b1&0x80 != 0 || b0&0x80 == 0 {
				fail(errors.New("bench: masked or fragmented frame from the server"))
				return
			}
			hl, n := 2, int(b1&0x7f)
			switch n {
			case 126:
				if w-r < 4 {
					goto more
				}
				hl, n = 4, int(binary.BigEndian.Uint16(buf[r+2:]))
			case 127:
				if w-r < 10 {
					goto more
				}
				hl, n = 10, int(binary.BigEndian.Uint64(buf[r+2:]))
			}
			if w-r < hl+n {
				if hl+n > len(buf) {
					nb := make([]byte, hl+n+leanBufSize)
					w = copy(nb, buf[r:w])
					buf, r = nb, 0
				}
				goto more
			}
			p := buf[r+hl : r+hl+n]
			r += hl + n
			switch ws.OpCode(b0 & 0x0f) {
			case ws.OpBinary:
				c.binaryAudio(p, now)
			case ws.OpText:
				if err := c.text(p, now, &accepted, joined); err != nil {
					fail(err)
					return
				}
			case ws.OpPing:
				c.write(ws.NewPongFrame(bytes.Clone(p)))
			case ws.OpClose:
				code := 0
				if len(p) >= 2 {
					code = int(binary.BigEndian.Uint16(p))
				}
				c.write(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), "")))
				if code == 1000 && accepted {
					return // the session ended: nothing was lost
				}
				fail(fmt.Errorf("bench: connection closed by the server with %d", code))
				return
			}
		}
	more:
		if r == w {
			r, w = 0, 0
		} else if r > 0 && len(buf)-w < 1024 {
			w = copy(buf, buf[r:w])
			r = 0
		}
		n, err := c.nc.Read(buf[w:])
		if err != nil {
			fail(err)
			return
		}
		w += n
		now = time.Now().UnixNano()
	}
}

// binaryAudio handles a binary audio frame (docs/protocol.md 3.1): kind 1
// (PCM) or 2 (Opus) at byte 1, the sequence number at bytes 4–11, the
// audio from byte 20.
func (c *leanConn) binaryAudio(p []byte, now int64) {
	if len(p) < 20 || p[0] != 1 || (p[1] != 1 && p[1] != 2) {
		return
	}
	c.lst.audio(binary.BigEndian.Uint64(p[4:]), p[20:], len(p), now)
}

var (
	keyType     = []byte(`"type":"`)
	keyAudio    = []byte(`"audioData":"`)
	keySeq      = []byte(`"sequenceNumber":`)
	typeAudio   = []byte(`audioData"`)
	typeJoined  = []byte(`sessionJoined"`)
	typeError   = []byte(`error"`)
	keyCode     = []byte(`"code":"`)
	timingChars = base64.StdEncoding.EncodedLen(18) // 24 characters carry the first 18 bytes
)

// text handles a JSON message. For audioData it decodes only the base64
// characters that carry the timing (for Opus, the whole packet, by which
// the listener knows it), and the sequence number.
func (c *leanConn) text(p []byte, now int64, accepted *bool, joined chan<- error) error {
	i := bytes.Index(p, keyType)
	if i < 0 {
		return nil
	}
	t := p[i+len(keyType):]
	switch {
	case bytes.HasPrefix(t, typeAudio):
		a := bytes.Index(p, keyAudio)
		if a < 0 {
			return nil
		}
		var audio []byte
		if c.opus {
			b64 := p[a+len(keyAudio):]
			end := bytes.IndexByte(b64, '"')
			if end < 0 {
				return nil
			}
			c.packet = c.packet[:cap(c.packet)]
			if n := base64.StdEncoding.DecodedLen(end); n > len(c.packet) {
				c.packet = make([]byte, n)
			}
			n, err := base64.StdEncoding.Decode(c.packet, b64[:end])
			if err != nil {
				return nil
			}
			audio = c.packet[:n]
		} else {
			if len(p)-a-len(keyAudio) < timingChars {
				return nil
			}
			var timing [18]byte
			if _, err := base64.StdEncoding.Decode(timing[:], p[a+len(keyAudio):a+len(keyAudio)+timingChars]); err != nil {
				return nil
			}
			audio = timing[:16]
		}
		s := bytes.Index(p[a:], keySeq)
		if s < 0 {
			return nil
		}
		digits := p[a+s+len(keySeq):]
		var seq uint64
		for _, d := range digits {
			if d < '0' || d > '9' {
				break
			}
			seq = seq*10 + uint64(d-'0')
		}
		c.lst.audio(seq, audio, len(p), now)
	case !*accepted && bytes.HasPrefix(t, typeJoined):
		*accepted = true
		joined <- nil
	case !*accepted && bytes.HasPrefix(t, typeError):
		code := "unknown"
		if k := bytes.Index(p, keyCode); k >= 0 {
			rest := p[k+len(keyCode):]
			if e := bytes.IndexByte(rest, '"'); e >= 0 {
				code = string(rest[:e])
			}
		}
		return errors.New("bench: join refused: " + code)
	}
	return nil
}
