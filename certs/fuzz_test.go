package certs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzSniff reads bytes a client sends to the TLS port: a TLS handshake
// (first byte 0x16) passes through untouched and unanswered; anything
// else fails with ErrPlainHTTP and, when it is an HTTP request, gets one
// well-formed 308 to https on a host of the request's (or the port's own
// address) with the request's path, and nothing else: no header a client
// could inject. The corpus is in testdata/fuzz.
func FuzzSniff(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		conn := &bufConn{in: bytes.NewReader(in)}
		got, err := io.ReadAll(&sniffConn{Conn: conn, timeout: time.Second})
		switch {
		case len(in) == 0:
			if err != nil || len(got) != 0 || conn.out.Len() != 0 {
				t.Fatalf("no input: read %q, %v; wrote %q", got, err, conn.out.Bytes())
			}
			return
		case in[0] == 0x16:
			if err != nil || !bytes.Equal(got, in) || conn.out.Len() != 0 {
				t.Fatalf("TLS: read %q, %v, want the input; wrote %q", got, err, conn.out.Bytes())
			}
			return
		case !errors.Is(err, ErrPlainHTTP) || len(got) != 0:
			t.Fatalf("plain: read %q, %v; want ErrPlainHTTP", got, err)
		}

		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			if conn.out.Len() != 0 {
				t.Fatalf("answered %q, which is no request (%v)", conn.out.Bytes(), err)
			}
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(conn.out.Bytes())), nil)
		if err != nil {
			t.Fatalf("answer %q does not parse: %v", conn.out.Bytes(), err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("answer %q: body: %v", conn.out.Bytes(), err)
		}
		// ReadResponse takes Connection: close out of the header into Close.
		if resp.StatusCode != http.StatusPermanentRedirect || len(resp.Header) != 3 || !resp.Close ||
			resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" ||
			resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Fatalf("answer %q", conn.out.Bytes())
		}
		loc := resp.Header.Get("Location")
		if string(body) != "This port speaks HTTPS: "+loc+"\n" {
			t.Fatalf("body %q for Location %q", body, loc)
		}
		wantURI := req.URL.RequestURI()
		if !strings.HasPrefix(wantURI, "/") {
			wantURI = "/" // "*" of OPTIONS, an opaque URI: no path to keep
		}
		host := requestHost(req.Host)
		wantHost := host
		if host == "" {
			wantHost = "192.0.2.10" // the port's own address
		}
		if want := "https://" + net.JoinHostPort(wantHost, "8443") + wantURI; loc != want {
			t.Fatalf("Location %q for Host %q and a request of %q, want %q", loc, req.Host, req.URL.RequestURI(), want)
		}
		if u, err := url.Parse(loc); err != nil || u.Scheme != "https" || u.Hostname() != wantHost || u.Port() != "8443" {
			t.Fatalf("Location %q does not parse as https://%s:8443 (%v)", loc, wantHost, err)
		}

		// The redirecting handler of the plain HTTP port agrees (but for
		// http.Redirect's escaping of bytes beyond ASCII).
		w := httptest.NewRecorder()
		RedirectHTTPS(8443).ServeHTTP(w, req)
		switch {
		case host == "" && w.Code != http.StatusBadRequest:
			t.Fatalf("RedirectHTTPS without a host: %d %q", w.Code, w.Header().Get("Location"))
		case host != "" && (w.Code != http.StatusPermanentRedirect || w.Header().Get("Location") != escapeNonASCII(loc)):
			t.Fatalf("RedirectHTTPS: %d %q; the TLS port answers %q", w.Code, w.Header().Get("Location"), loc)
		}
	})
}

func escapeNonASCII(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			fmt.Fprintf(&b, "%%%02x", s[i])
		} else {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// bufConn is a connection whose client sent in and then nothing more.
type bufConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *bufConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *bufConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *bufConn) Close() error                { return nil }
func (c *bufConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 8443} }
func (c *bufConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 99), Port: 50000}
}
func (c *bufConn) SetDeadline(t time.Time) error      { return nil }
func (c *bufConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *bufConn) SetWriteDeadline(t time.Time) error { return nil }
