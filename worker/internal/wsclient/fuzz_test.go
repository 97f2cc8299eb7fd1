package wsclient_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/internal/wsclient"
)

// The fuzz targets play a server on loopback that sends what the fuzzer
// gives; their corpora are in testdata/fuzz.

// rawServer answers one connection at a time with a handler.
type rawServer struct {
	ln  net.Listener
	url string
}

func newRawServer(f *testing.F) *rawServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	return &rawServer{ln: ln, url: "ws://" + ln.Addr().String() + "/"}
}

// serve hands the next connection to handle; the channel closes once
// handle has returned and the connection is closed.
func (s *rawServer) serve(handle func(c net.Conn)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		handle(c)
	}()
	return done
}

func wait(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the server's connection did not end")
	}
}

var readCodes = map[string]bool{engine.ErrTimeout: true, engine.ErrUnavailable: true, engine.ErrBadResponse: true}

// FuzzNext sends frames after a good handshake and reads every message
// with Next until the end: each is a whole text or binary message within
// MaxMessage, text is UTF-8, the error at the end has a read error's code
// and is not a timeout (the server closed its side), and all the client
// wrote back were masked pongs and closes.
func FuzzNext(f *testing.F) {
	srv := newRawServer(f)
	f.Fuzz(func(t *testing.T, frames []byte) {
		var wrote []ws.Header
		var wroteErr error
		done := srv.serve(func(c net.Conn) {
			if _, err := ws.Upgrade(c); err != nil {
				wroteErr = err
				return
			}
			if _, err := c.Write(frames); err != nil {
				return // the client gave up first
			}
			_ = c.(*net.TCPConn).CloseWrite()
			for {
				h, err := ws.ReadHeader(c)
				if err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, c, h.Length); err != nil {
					return
				}
				wrote = append(wrote, h)
			}
		})
		c, err := wsclient.Dial(context.Background(), srv.url, nil, 10*time.Second)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			p, op, err := c.Next()
			if err != nil {
				var e *engine.Error
				if !errors.As(wsclient.ReadError("test", err), &e) || !readCodes[e.Code] {
					t.Fatalf("ReadError(%v) = %v", err, wsclient.ReadError("test", err))
				}
				if e.Code == engine.ErrTimeout {
					t.Fatalf("Next did not end with the server's data: %v", err)
				}
				break
			}
			switch {
			case op != ws.OpText && op != ws.OpBinary:
				t.Fatalf("Next returned a message of opcode %v", op)
			case len(p) > wsclient.MaxMessage:
				t.Fatalf("Next returned %d bytes", len(p))
			case op == ws.OpText && !utf8.Valid(p):
				t.Fatalf("Next returned text that is not UTF-8: %q", p)
			}
		}
		_ = c.Abort()
		wait(t, done)
		if wroteErr != nil {
			t.Fatalf("handshake: %v", wroteErr)
		}
		for _, h := range wrote {
			if h.OpCode != ws.OpPong && h.OpCode != ws.OpClose || h.Length > 125 {
				t.Fatalf("the client wrote %+v", h)
			}
			// gobwas/ws v1.5.0 answers an invalid close frame with an
			// unmasked close carrying a reason (wsutil.ControlHandler.
			// closeWithProtocolError drops what MaskFrameInPlace returns);
			// the connection ends either way, so only that one is let
			// through. The echo of a valid close is 0 or 2 bytes.
			if !h.Masked && !(h.OpCode == ws.OpClose && h.Length > 2) {
				t.Fatalf("the client wrote an unmasked %+v", h)
			}
		}
	})
}

// FuzzDial answers the handshake with a response ("{accept}" in it
// becomes the right Sec-WebSocket-Accept): Dial either connects or fails
// with an error DialError codes as the status says (429 throttled, other
// 4xx refused, anything else unavailable), never with a negative wait.
func FuzzDial(f *testing.F) {
	srv := newRawServer(f)
	f.Fuzz(func(t *testing.T, response []byte) {
		done := srv.serve(func(c net.Conn) {
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			accept := acceptKey(req.Header.Get("Sec-WebSocket-Key"))
			_, _ = c.Write(bytes.ReplaceAll(response, []byte("{accept}"), []byte(accept)))
		})
		c, err := wsclient.Dial(context.Background(), srv.url, http.Header{"Authorization": {"Token x"}}, 10*time.Second)
		if err == nil {
			c.Abort()
			wait(t, done)
			return
		}
		wait(t, done)
		var e *engine.Error
		if !errors.As(wsclient.DialError(context.Background(), "test", err), &e) {
			t.Fatalf("DialError(%v) is not an engine.Error", err)
		}
		if e.RetryAfter < 0 {
			t.Fatalf("RetryAfter %v", e.RetryAfter)
		}
		want := engine.ErrUnavailable
		var he *wsclient.HandshakeError
		if errors.As(err, &he) {
			status, _ := strconv.Atoi(strings.TrimPrefix(he.Error(), "handshake: HTTP "))
			switch {
			case status == http.StatusTooManyRequests:
				want = engine.ErrThrottled
			case status >= 400 && status < 500:
				want = engine.ErrRefused
			}
			if e.RetryAfter > 0 && status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
				t.Fatalf("status %d: RetryAfter %v", status, e.RetryAfter)
			}
		} else if e.RetryAfter != 0 {
			t.Fatalf("RetryAfter %v without a status", e.RetryAfter)
		}
		if e.Code != want && e.Code != engine.ErrTimeout {
			t.Fatalf("DialError(%v) code %s, want %s", err, e.Code, want)
		}
	})
}

// acceptKey is RFC 6455's Sec-WebSocket-Accept for key.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
