package realtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/pentecost/pentecost"
	dto "github.com/prometheus/client_model/go"
)

// FuzzDecodeMessage: any input decodes to a message with an action or to
// one of the two documented errors, and never panics.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"action":"heartbeat"}`,
		`{"action":"sendAudio","sessionId":"golden-eagle-427","audioData":"AAEC","sequenceNumber":7}`,
		`{"action":"setVolume","volumeLevel":0.5}`,
		`{"action":"changeLanguage","targetLanguage":"es"}`,
		`{"action":`, `[]`, `null`, `"x"`, ``, `{"action":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := DecodeMessage(p)
		if err != nil {
			if c := pentecost.ErrorCode(err); c != pentecost.EINVALIDMESSAGE && c != pentecost.EUNKNOWNACTION {
				t.Fatalf("code %s", c)
			}
			return
		}
		if m.Action == "" {
			t.Fatal("message without action accepted")
		}
	})
}

// fuzzReadLimit is the read limit of FuzzReadMessage, small so that the
// fuzzer reaches it with small inputs.
const fuzzReadLimit = 4 << 10

// FuzzReadMessage: whatever bytes a client sends after the handshake, the
// read loop never panics, hands on only whole messages within the read
// limit, text only in UTF-8, each in memory that follows its size rather
// than what was announced, and ends the connection with a close code from
// docs/protocol.md section 5. The seed corpus in testdata/fuzz holds the
// attack frames of securitytest/wsframe_test.go.
func FuzzReadMessage(f *testing.F) {
	f.Add(fuzzFrame(true, ws.OpText, []byte(`{"action":"heartbeat"}`)))
	f.Add(fuzzFrame(true, ws.OpBinary, bytes.Repeat([]byte{1, 2}, 320)))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := NewServer()
		s.ReadLimit = fuzzReadLimit
		s.CloseTimeout = time.Second
		nc := &fuzzConn{r: bytes.NewReader(in)}
		c := s.newConn(nc, bufio.NewReaderSize(nc, 512), roleListener, false)
		c.serve(context.Background(), func(op ws.OpCode, p []byte) {
			switch {
			case op != ws.OpText && op != ws.OpBinary:
				t.Fatalf("message with opcode %v handed on", op)
			case len(p) > fuzzReadLimit:
				t.Fatalf("message of %d bytes over the limit handed on", len(p))
			case cap(p) > 2*len(p)+2*readChunk:
				t.Fatalf("message of %d bytes held in %d", len(p), cap(p))
			case op == ws.OpText && !utf8.Valid(p):
				t.Fatalf("text message not UTF-8 handed on: %q", p)
			}
		})
		var panics dto.Metric
		if err := s.metrics.panics.Write(&panics); err != nil || panics.GetCounter().GetValue() != 0 {
			t.Fatal("the read loop panicked")
		}
		code, ok := nc.closeCode()
		if !ok {
			t.Fatal("connection ended without a close frame")
		}
		switch {
		case code == CloseNormal, code == CloseProtocol, code == CloseInvalidData, code == CloseTooBig:
		case validCloseCode(code): // a peer's own code, echoed
		default:
			t.Fatalf("closed with %d", code)
		}
	})
}

// fuzzFrame builds a masked client frame.
func fuzzFrame(fin bool, op ws.OpCode, p []byte) []byte {
	var b bytes.Buffer
	h := ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: int64(len(p))}
	_ = ws.WriteHeader(&b, h)
	body := bytes.Clone(p)
	ws.Cipher(body, h.Mask, 0)
	b.Write(body)
	return b.Bytes()
}

// fuzzConn is a connection whose client sent in and reads whatever the
// server writes; deadlines never expire.
type fuzzConn struct {
	r   io.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *fuzzConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *fuzzConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *fuzzConn) Close() error                     { return nil }
func (c *fuzzConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fuzzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// closeCode returns the code of the close frame the server wrote, which
// must follow whole frames only.
func (c *fuzzConn) closeCode() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := bytes.NewReader(c.out.Bytes())
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return 0, false
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			return 0, false
		}
		if h.OpCode == ws.OpClose && len(p) >= 2 {
			return int(binary.BigEndian.Uint16(p)), true
		}
	}
}
