package http_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	phttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/sqlite"
)

// dialServer opens a raw TCP connection to ts, closed when the test ends,
// with a generous deadline that only a hung server reaches.
func dialServer(t *testing.T, ts *TestServer) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return conn
}

// slowBody sends the headers of a login request and part of its body, and
// then nothing more, as a client trickling its body would.
func slowBody(t *testing.T, conn net.Conn) {
	t.Helper()
	_, err := io.WriteString(conn, "POST /auth/login HTTP/1.1\r\nHost: test\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":")
	if err != nil {
		t.Fatal(err)
	}
}

// TestServer_ReadTimeout checks that a client sending headers and then a
// trickle of body is cut off after ReadTimeout instead of holding its
// connection, and a graceful shutdown, for ever.
func TestServer_ReadTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond

	t.Run("ConnectionClosed", func(t *testing.T) {
		ts := MustOpenServer(t, func(s *phttp.Server) { s.ReadTimeout = timeout })
		conn := dialServer(t, ts)
		slowBody(t, conn)
		// The server answers (or not) and closes the connection; only the
		// test's own deadline, far beyond ReadTimeout, would end a hang.
		if _, err := io.ReadAll(conn); err != nil {
			t.Fatalf("connection still open: %v", err)
		}
	})

	t.Run("ShutdownNotBlocked", func(t *testing.T) {
		ts := MustOpenServer(t, func(s *phttp.Server) { s.ReadTimeout = timeout })
		conn := dialServer(t, ts)
		slowBody(t, conn)
		// The login handler counts the attempt before reading the body:
		// once it has, the request is under way and Shutdown must wait
		// for it. With no read deadline it would wait until ctx ends.
		waitFor(t, func() bool { return ts.Limiter.Len() == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ts.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	})

	t.Run("MountedHandlersExempt", func(t *testing.T) {
		// With a deadline already past when set, any read an API request
		// makes fails at once. A mounted handler, which may live far
		// longer than ReadTimeout, must be left alone: this one reads its
		// body only after the client has seen its answer begin.
		ts := MustOpenServer(t, func(s *phttp.Server) {
			s.ReadTimeout = time.Nanosecond
			s.Handle("POST /stream", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rc := http.NewResponseController(w)
				_ = rc.EnableFullDuplex()
				w.WriteHeader(http.StatusOK)
				_ = rc.Flush()
				line, err := bufio.NewReader(r.Body).ReadString('\n')
				if err != nil {
					line = "read failed\n"
				}
				io.WriteString(w, "got "+line)
			}))
		})
		conn := dialServer(t, ts)
		if _, err := io.WriteString(conn, "POST /stream HTTP/1.1\r\nHost: test\r\nContent-Length: 6\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if _, err := io.WriteString(conn, "hello\n"); err != nil {
			t.Fatal(err)
		}
		if body, err := io.ReadAll(resp.Body); err != nil || string(body) != "got hello\n" {
			t.Fatalf("got %q, %v", body, err)
		}
	})
}

// leavingSessions is the real store behind a hook: CreateSession waits for
// the request's context to end, as if the client went away while the store
// worked, and then lets the store answer.
type leavingSessions struct {
	*sqlite.SessionService
	entered chan struct{}
}

func (s *leavingSessions) CreateSession(ctx context.Context, sess *pentecost.Session) error {
	s.entered <- struct{}{}
	<-ctx.Done()
	return s.SessionService.CreateSession(ctx, sess)
}

// TestServer_ClientGone checks that a client going away mid-request is not
// reported as the server's failure: no error or warning in the logs, no
// error counted, and a 499 in the access log.
func TestServer_ClientGone(t *testing.T) {
	entered := make(chan struct{}, 1)
	ts := MustOpenServer(t, func(s *phttp.Server) {
		s.Sessions = &leavingSessions{SessionService: s.Sessions.(*sqlite.SessionService), entered: entered}
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", ts.URL()+"/sessions", strings.NewReader(`{"sourceLanguage":"en"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ts.Token(t, "alice"))
	req.Header.Set(phttp.CorrelationHeader, "gone-check")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-entered
	cancel() // the client goes away while the store works
	if err := <-done; err == nil {
		t.Fatal("the request completed")
	}

	// The access log line is written last, once the handler is done.
	var access map[string]any
	waitFor(t, func() bool {
		for _, line := range strings.Split(ts.Logs.String(), "\n") {
			if strings.Contains(line, `"gone-check"`) && strings.Contains(line, `"http request"`) {
				mustUnmarshal(t, []byte(line), &access)
				return true
			}
		}
		return false
	})
	if access["status"] != 499.0 {
		t.Fatalf("access log = %v, want status 499", access)
	}
	var debug bool
	for _, line := range strings.Split(strings.TrimSpace(ts.Logs.String()), "\n") {
		var rec map[string]any
		mustUnmarshal(t, []byte(line), &rec)
		switch rec["level"] {
		case "ERROR", "WARN":
			t.Errorf("logged at %s: %s", rec["level"], line)
		case "DEBUG":
			debug = debug || rec["correlation_id"] == "gone-check"
		}
	}
	if !debug {
		t.Errorf("no debug line for the request:\n%s", ts.Logs.String())
	}

	resp := ts.Do(t, Request{Method: "GET", Path: "/metrics"})
	if strings.Contains(string(resp.Body), `pentecost_errors_total{code="`+pentecost.EINTERNAL+`"}`) {
		t.Errorf("counted as an internal error:\n%s", resp.Body)
	}
	// The store saw the cancellation, not a failure: nothing was stored.
	if _, n, err := ts.Sessions.FindSessions(context.Background(), pentecost.SessionFilter{}); err != nil || n != 0 {
		t.Fatalf("FindSessions = %d, %v; want nothing stored", n, err)
	}
}
