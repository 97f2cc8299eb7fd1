package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// binPath is the pentecost binary built once by TestMain.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pentecost-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "pentecost")
	build := exec.Command("go", "build", "-o", binPath, "../cmd/pentecost")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build pentecost:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one `pentecost serve --redis` child process.
type node struct {
	name string
	url  string // http://127.0.0.1:port
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// baseEnv are the settings every test node runs with: a short presence
// expiry, so that counts after a crash settle within seconds, and no
// per-IP limits (every client of a test is 127.0.0.1) except logins.
var baseEnv = map[string]string{
	"PRESENCE_TTL_SECONDS":                   "3",
	"RATE_LIMIT_CONNECTION_ATTEMPTS_PER_MIN": "0",
	"RATE_LIMIT_LISTENER_JOINS_PER_MIN":      "0",
	"RATE_LIMIT_LOGIN_ATTEMPTS_PER_MIN":      "3",
	"SHUTDOWN_TIMEOUT_SECONDS":               "5",
	"LOG_LEVEL":                              "info",
	"LOG_FORMAT":                             "text",
}

// startNode starts a node on a free port and waits until /readyz answers;
// extraEnv ("KEY=value") adds to or overrides baseEnv.
// It is killed when the test ends.
func startNode(t *testing.T, name, redisURL string, extraEnv ...string) *node {
	t.Helper()
	for attempt := 0; ; attempt++ {
		n, err := launchNode(t, name, redisURL, extraEnv)
		if err == nil {
			t.Cleanup(func() {
				n.kill()
				if t.Failed() { // what the node saw helps to tell why
					t.Logf("node %s output:\n%s", n.name, n.out.String())
				}
			})
			return n
		}
		if attempt == 2 {
			t.Fatalf("node %s: %v", name, err)
		}
		// A port taken between choosing and binding: try another.
	}
}

func launchNode(t *testing.T, name, redisURL string, extraEnv []string) (*node, error) {
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(binPath, "serve", "--redis", redisURL, "--addr", addr, "--data-dir", t.TempDir())
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range baseEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, extraEnv...) // later entries win
	n := &node{name: name, url: "http://" + addr, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = n.out, n.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(n.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if n.ready() {
			return n, nil
		}
		select {
		case <-n.done:
			return nil, fmt.Errorf("exited at start:\n%s", n.out.String())
		default:
		}
		if time.Now().After(deadline) {
			n.kill()
			return nil, fmt.Errorf("not ready after 15 s:\n%s", n.out.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// ready reports whether the node's /readyz answers 200.
func (n *node) ready() bool {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(n.url + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// kill ends the node with SIGKILL, as a crash would, and waits for it.
func (n *node) kill() {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Kill()
	<-n.done
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cli runs a pentecost administration command and returns its stdout.
func cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("pentecost %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// mintToken creates a speaker account in Redis and mints a token for it
// with the CLI, as an operator would.
func mintToken(t *testing.T, redisURL, user string) string {
	t.Helper()
	cli(t, "correct horse battery\n", "users", "add", "--redis", redisURL, "--password-stdin", user)
	out := strings.Fields(cli(t, "", "token", "--redis", redisURL, "--user", user, "--ttl", "1h"))
	if len(out) == 0 {
		t.Fatal("pentecost token printed nothing")
	}
	return out[len(out)-1]
}

// apiError is the API's error body.
type apiError struct {
	Code string `json:"code"`
}

// session is the part of GET /sessions/{id} the tests read.
type session struct {
	Status        string `json:"status"`
	ListenerCount int    `json:"listenerCount"`
}

// do sends a request and decodes a JSON answer into out (when not nil);
// it returns the status and the error code of an error answer.
func do(t *testing.T, method, url, token string, body any, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		var e apiError
		_ = json.Unmarshal(data, &e)
		return resp.StatusCode, e.Code
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, data)
		}
	}
	return resp.StatusCode, ""
}

func getSession(t *testing.T, n *node, id string) session {
	t.Helper()
	var s session
	if status, code := do(t, "GET", n.url+"/sessions/"+id, "", nil, &s); status != http.StatusOK {
		t.Fatalf("GET /sessions/%s on %s = %d %s", id, n.name, status, code)
	}
	return s
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// proxy is a TCP load balancer in front of some nodes: each connection
// goes to the first backend whose /readyz answers 200 (a draining node's
// does not), else to the first that accepts it, so that when one node is
// gone or draining its clients move to the next, as behind a real balancer
// with health checks.
type proxy struct {
	ln       net.Listener
	backends []string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, backends ...*node) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, conns: map[net.Conn]struct{}{}}
	for _, n := range backends {
		p.backends = append(p.backends, strings.TrimPrefix(n.url, "http://"))
	}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *proxy) forward(c net.Conn) {
	var b net.Conn
	for _, healthy := range []bool{true, false} {
		for _, addr := range p.backends {
			if healthy && !(&node{url: "http://" + addr}).ready() {
				continue
			}
			var err error
			if b, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
				break
			}
		}
		if b != nil {
			break
		}
	}
	if b == nil {
		c.Close()
		return
	}
	if !p.track(c, b) {
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) { _, _ = io.Copy(dst, src); done <- struct{}{} }
	go pipe(b, c)
	go pipe(c, b)
	<-done // one side ended: end both, as a balancer does when a backend dies
	c.Close()
	b.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, b)
	p.mu.Unlock()
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
}

// ctx returns a context bounded by d, cancelled when the test ends.
func ctx(t *testing.T, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return c
}
