package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// Target is a server ready for one run.
type Target struct {
	URL   string
	Token string
	// PID is the server's process id for /proc sampling (0: unknown).
	PID int
	// InProcess says the server shares this process with the generator.
	InProcess bool
	// Close stops the server if the benchmark started it; may be nil.
	Close func() error
	// Nodes, when several servers share a Redis, are all of them, the
	// first being URL's; RedisPID is the redis-server's pid (0: unknown).
	Nodes    []Node
	RedisPID int
}

// Starter provides a fresh Target for each run (a new child process, or an
// existing server).
type Starter func(ctx context.Context) (*Target, error)

// Process is a `pentecost serve` child process on a loopback port, with a
// temporary data dir and every rate limit off.
type Process struct {
	URL     string
	PID     int
	DataDir string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// SpawnConfig says how to start a server process.
type SpawnConfig struct {
	// Bin is the pentecost binary to run.
	Bin string
	// MaxListeners is the server's per-session cap (at least 500).
	MaxListeners int
	// Pprof serves /debug/pprof/ for profiling during the run.
	Pprof bool
	// Env is added to the child's environment (KEY=VALUE), after the
	// benchmark's own settings, so it may override them.
	Env []string
	// RedisURL, when set, makes the server a node sharing that Redis.
	RedisURL string
	// Stdout and Stderr receive the server's output; default: discarded.
	Stdout, Stderr io.Writer
}

// Spawn starts `Bin serve` listening on a free loopback port and waits
// until it answers /healthz.
func Spawn(ctx context.Context, sc SpawnConfig) (*Process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pentecost-bench-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(sc.Bin, "serve")
	// Settings go by environment, which older builds (compared in A/B
	// runs) ignore when they do not know one, where a flag would fail.
	cmd.Env = append(os.Environ(),
		"PENTECOST_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"PENTECOST_DATA_DIR="+dir,
		"PENTECOST_PPROF="+strconv.FormatBool(sc.Pprof),
		"LOG_LEVEL=warn",
		"MAX_LISTENERS_PER_SESSION="+strconv.Itoa(max(sc.MaxListeners, 500)),
		// One address opens every connection: limits off (0: unlimited).
		"RATE_LIMIT_SESSIONS_PER_HOUR=0",
		"RATE_LIMIT_LISTENER_JOINS_PER_MIN=0",
		"RATE_LIMIT_CONNECTION_ATTEMPTS_PER_MIN=0",
		"RATE_LIMIT_HEARTBEATS_PER_MIN=0",
		"RATE_LIMIT_LOGIN_ATTEMPTS_PER_MIN=0",
		"MAX_CONNECTIONS_PER_CLIENT=0",
		"RATE_LIMIT_SESSION_MISSES_PER_MIN=0",
		"SHUTDOWN_TIMEOUT_SECONDS=1",
	)
	if sc.RedisURL != "" {
		cmd.Env = append(cmd.Env, "REDIS_URL="+sc.RedisURL)
	}
	cmd.Env = append(cmd.Env, sc.Env...)
	cmd.Stdout, cmd.Stderr = sc.Stdout, sc.Stderr
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", sc.Bin, err)
	}
	p := &Process{URL: "http://127.0.0.1:" + strconv.Itoa(port), PID: cmd.Process.Pid, DataDir: dir, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(ctx, 30*time.Second); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Process) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("server exited before it was ready: %v", p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("server not ready after " + timeout.String())
		}
	}
}

// Close stops the server (SIGTERM, then SIGKILL after 10 s) and removes
// its data dir.
func (p *Process) Close() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return os.RemoveAll(p.DataDir)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// RedisProcess is a redis-server child on a free loopback port, with no
// persistence, for a multi-node run.
type RedisProcess struct {
	URL string
	PID int

	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// SpawnRedis starts bin (redis-server) and waits until it answers PING.
func SpawnRedis(ctx context.Context, bin string) (*RedisProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pentecost-bench-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &RedisProcess{URL: "redis://127.0.0.1:" + strconv.Itoa(port) + "/0", PID: cmd.Process.Pid, dir: dir, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pingRedis(addr) {
			return p, nil
		}
		select {
		case <-p.done:
			_ = os.RemoveAll(dir)
			return nil, errors.New("redis-server exited at start")
		case <-ctx.Done():
			_ = p.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.Close()
			return nil, errors.New("redis-server did not answer PING within 10s")
		}
	}
}

func pingRedis(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 7)
	n, _ := io.ReadFull(c, buf)
	return string(buf[:n]) == "+PONG\r\n"
}

// Close stops redis-server and removes its directory.
func (p *RedisProcess) Close() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return os.RemoveAll(p.dir)
}
