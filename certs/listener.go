package certs

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultSniffTimeout bounds how long a connection to the TLS port may take
// to send its first byte, and a plain HTTP one to send its request.
const DefaultSniffTimeout = 10 * time.Second

// ErrPlainHTTP is the error a connection's TLS handshake fails with when
// the client spoke plain HTTP and was redirected; servers may log it
// quietly.
var ErrPlainHTTP = errors.New("certs: plain HTTP on the TLS port: redirected to https")

// NewListener returns a listener whose connections are TLS servers with
// config, like tls.NewListener, except that a client whose first byte is
// not a TLS handshake record (0x16) — someone who typed http:// before
// the TLS port — gets a 308 redirect to https on the same host, port and
// path, and its connection's handshake fails with ErrPlainHTTP.
//
// The sniff happens inside the handshake, on the goroutine that serves the
// connection: Accept never waits for a client, and no goroutine is
// started. The first byte must arrive within timeout (DefaultSniffTimeout
// when 0) or before the deadline the server set for the handshake,
// whichever comes first.
func NewListener(inner net.Listener, config *tls.Config, timeout time.Duration) net.Listener {
	if timeout <= 0 {
		timeout = DefaultSniffTimeout
	}
	return &listener{Listener: inner, config: config, timeout: timeout}
}

type listener struct {
	net.Listener
	config  *tls.Config
	timeout time.Duration
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(&sniffConn{Conn: c, timeout: l.timeout}, l.config), nil
}

// sniffConn looks at the first byte read from the connection.
type sniffConn struct {
	net.Conn
	timeout time.Duration

	mu           sync.Mutex
	sniffed      bool
	pending      []byte    // the sniffed byte, not yet returned
	readDeadline time.Time // the caller's, restored after the sniff
}

func (c *sniffConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if !c.sniffed {
		c.sniffed = true
		if err := c.sniffLocked(); err != nil {
			c.mu.Unlock()
			return 0, err
		}
	}
	if len(c.pending) > 0 && len(p) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

func (c *sniffConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *sniffConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *sniffConn) sniffLocked() error {
	dl := time.Now().Add(c.timeout)
	if !c.readDeadline.IsZero() && c.readDeadline.Before(dl) {
		dl = c.readDeadline
	}
	if err := c.Conn.SetReadDeadline(dl); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(c.Conn, b[:]); err != nil {
		return err
	}
	if b[0] == 0x16 { // TLS handshake record
		c.pending = b[:]
		return c.Conn.SetReadDeadline(c.readDeadline)
	}
	c.redirect(b[0], dl)
	return ErrPlainHTTP
}

// redirect reads a plain HTTP request whose first byte is first and
// answers it with a redirect to https; anything else gets no answer.
func (c *sniffConn) redirect(first byte, deadline time.Time) {
	c.Conn.SetDeadline(deadline)
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader([]byte{first}), io.LimitReader(c.Conn, 64<<10)), 4096)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	// Drain a small body, so that closing the connection with unread
	// data does not reset it before the client reads the answer.
	io.CopyN(io.Discard, req.Body, 64<<10)
	req.Body.Close()

	port := 0
	if a, ok := c.Conn.LocalAddr().(*net.TCPAddr); ok {
		port = a.Port
	}
	host := requestHost(req.Host)
	if host == "" {
		if a, ok := c.Conn.LocalAddr().(*net.TCPAddr); ok {
			host = a.IP.String()
		}
	}
	loc := HTTPSURL(host, port) + requestPath(req.URL)
	body := "This port speaks HTTPS: " + loc + "\n"
	fmt.Fprintf(c.Conn, "HTTP/1.1 308 Permanent Redirect\r\nLocation: %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", loc, len(body), body)
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// HTTPSURL returns https://host:port, leaving out port 443.
func HTTPSURL(host string, port int) string {
	if port == 443 || port == 0 {
		if strings.Contains(host, ":") {
			return "https://[" + host + "]"
		}
		return "https://" + host
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(port))
}

// requestHost returns the host of a Host header without its port, or ""
// when it is not a plain name or address (it must not smuggle anything
// into the Location header).
func requestHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if h == "" || len(h) > 253 {
		return ""
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == ':' || r == '_') {
			return ""
		}
	}
	return h
}

// requestPath is the path and query to keep in a redirect of a request
// for u: "/" when its target is no path ("*" of OPTIONS, an opaque URI),
// which would run into the port of the Location.
func requestPath(u *url.URL) string {
	if p := u.RequestURI(); strings.HasPrefix(p, "/") {
		return p
	}
	return "/"
}

// RedirectHTTPS returns a handler redirecting every request to https on
// the same host at port (443 is left out of the URL), with 308 so that the
// method and body are kept.
func RedirectHTTPS(port int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := requestHost(r.Host)
		if host == "" {
			http.Error(w, "missing or invalid Host header", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, HTTPSURL(host, port)+requestPath(r.URL), http.StatusPermanentRedirect)
	})
}
