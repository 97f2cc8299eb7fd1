// Package redistest runs a real redis-server for tests: Start launches one
// on a free loopback port with no persistence, and stops it when the test
// ends. Failure tests stop, kill and restart it. Only tests import it.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer its first PING.
const startTimeout = 10 * time.Second

// Server is a redis-server process owned by a test.
type Server struct {
	tb      testing.TB
	bin     string
	dir     string
	port    int
	persist bool

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start launches redis-server on a free 127.0.0.1 port, with no RDB or AOF
// persistence, in a temporary directory, and waits until it answers PING.
// It is stopped when the test ends. When redis-server is not installed the
// test fails: run ./scripts/test, which installs it.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, false)
}

// StartPersistent is Start with an append-only file written at every
// command, as production Redis should run: Restart then brings the data
// back, as a restarted production Redis would.
func StartPersistent(tb testing.TB) *Server {
	tb.Helper()
	return start(tb, true)
}

func start(tb testing.TB, persist bool) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatal("redis-server is not installed: run ./scripts/test (installs redis-server)")
	}
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir(), persist: persist}
	tb.Cleanup(func() { s.Stop() })
	for attempt := 0; ; attempt++ {
		s.port = freePort(tb)
		err := s.launch()
		if err == nil {
			return s
		}
		if attempt == 2 { // a port taken between choosing and binding: try another
			tb.Fatalf("redistest: %v", err)
		}
	}
}

// freePort asks the kernel for a free loopback port.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// launch starts the process on s.port and waits for PING.
func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	aof := []string{"--appendonly", "no"}
	if s.persist {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	cmd := exec.Command(s.bin, append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--dir", s.dir,
		"--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
		"--logfile", filepath.Join(s.dir, "redis.log")}, aof...)...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(startTimeout)
	delay := time.Millisecond
	for {
		if ping(s.Addr()) == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited at start: %s", s.port, s.log())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on port %d did not answer PING within %v", s.port, startTimeout)
		}
		time.Sleep(delay) // polling a condition with a deadline
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// log returns the tail of the server's log, for failure messages.
func (s *Server) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	text := strings.TrimSpace(string(b))
	if len(text) > 2000 {
		text = text[len(text)-2000:]
	}
	return text
}

// ping sends PING over a fresh connection and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return errors.New("unexpected reply " + strconv.Quote(line))
	}
	return nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL returns a redis:// URL for the server's database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Stop shuts the server down (SIGTERM) and waits for it to exit. It is
// safe to call more than once, and on a stopped server.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill ends the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart stops the server if it runs and starts it again on the same
// port: empty, as a Redis restarted without persistence would be, or with
// its data for a server from StartPersistent.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		s.tb.Fatalf("redistest: restart: %v", err)
	}
}

// Running reports whether the server answers PING now.
func (s *Server) Running() bool {
	return ping(s.Addr()) == nil
}
