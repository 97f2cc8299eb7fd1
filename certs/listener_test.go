package certs_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost/certs"
)

// TestListener sends plain HTTP, TLS and silence to a TLS port served by
// net/http through NewListener.
func TestListener(t *testing.T) {
	l := mustOpenLocal(t, t.TempDir(), newClock(), &addrs{})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := inner.Addr().(*net.TCPAddr).Port
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "secure:"+strconv.FormatBool(r.TLS != nil))
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(certs.NewListener(inner, l.TLSConfig(), 300*time.Millisecond))
	t.Cleanup(func() { srv.Close() })
	addr := inner.Addr().String()

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tt := range []struct{ name, url, host, want string }{
		{"PathAndQuery", "http://" + addr + "/speak?code=golden-eagle-427", "", "https://127.0.0.1:" + strconv.Itoa(port) + "/speak?code=golden-eagle-427"},
		{"HostHeader", "http://" + addr + "/listen/x", "lectern.local:" + strconv.Itoa(port), "https://lectern.local:" + strconv.Itoa(port) + "/listen/x"},
		{"IPv6Host", "http://" + addr + "/", "[fd00::1]:" + strconv.Itoa(port), "https://[fd00::1]:" + strconv.Itoa(port) + "/"},
		{"BadHost", "http://" + addr + "/", "evil\r\nSet-Cookie: x=1", "https://127.0.0.1:" + strconv.Itoa(port) + "/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tt.url, nil)
			if tt.host != "" {
				req.Host = tt.host
			}
			resp, err := noFollow.Do(req)
			if tt.name == "BadHost" && err != nil {
				// Go's client refuses such a Host itself; send it raw.
				resp = rawGET(t, addr, tt.host)
			} else if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != tt.want {
				t.Fatalf("%d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), tt.want)
			}
		})
	}

	t.Run("POSTWithBody", func(t *testing.T) {
		resp, err := noFollow.Post("http://"+addr+"/auth/login", "application/json", strings.NewReader(`{"username":"admin"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 308 {
			t.Fatalf("%d", resp.StatusCode)
		}
	})

	t.Run("TLS", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(l.CA())
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := c.Get("https://localhost:" + strconv.Itoa(port) + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "secure:true" {
			t.Fatalf("%q", body)
		}
	})

	t.Run("Silent", func(t *testing.T) {
		// A client that sends nothing is dropped after the sniff timeout,
		// and neither it nor the redirects above leave goroutines behind.
		before := runtime.NumGoroutine()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		var ne net.Error
		if _, err := c.Read(make([]byte, 1)); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("read: %v; the server should have closed the connection", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("closed after %s", d)
		}
		waitFor(t, func() bool { return runtime.NumGoroutine() <= before })
	})

	t.Run("Garbage", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("\x00\x01not http\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 64)); n != 0 || err == nil {
			t.Fatalf("got %d bytes, %v; want the connection closed without an answer", n, err)
		}
	})
}

func rawGET(tb testing.TB, addr, host string) *http.Response {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+strings.ReplaceAll(host, "\r\n", " ")+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return resp
}

func TestRedirectHTTPS(t *testing.T) {
	for _, tt := range []struct {
		port       int
		host, want string
	}{
		{443, "live.example.org", "https://live.example.org/listen/a?b=c"},
		{8443, "live.example.org:80", "https://live.example.org:8443/listen/a?b=c"},
	} {
		r, _ := http.NewRequest("POST", "http://"+tt.host+"/listen/a?b=c", nil)
		w := httptest.NewRecorder()
		certs.RedirectHTTPS(tt.port).ServeHTTP(w, r)
		if w.Code != 308 || w.Header().Get("Location") != tt.want {
			t.Errorf("%d %q, want 308 %q", w.Code, w.Header().Get("Location"), tt.want)
		}
	}
}
