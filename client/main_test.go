package client_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	pthttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/inmem"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/sqlite"
	"github.com/prometheus/client_golang/prometheus"
)

// wait bounds how long a test waits for something that should happen soon.
const wait = 10 * time.Second

// workerSecret is the worker credential the test server accepts.
const workerSecret = "test-worker-secret"

// env is a whole Pentecost server on loopback: a SQLite file, the embedded
// token issuer, the HTTP API and the WebSocket endpoint.
type env struct {
	t        testing.TB
	sessions pentecost.SessionService
	issuer   *auth.Embedded
	rt       *realtime.Server
	api      *pthttp.Server
	reg      *prometheus.Registry
	// URL is the HTTP base URL; WSURL the WebSocket endpoint.
	URL, WSURL string

	mu    sync.Mutex
	conns []net.Conn // server-side connections, for cutting them
}

// newEnv starts a server; configure adjusts the realtime server before Open.
func newEnv(t testing.TB, configure ...func(*realtime.Server)) *env {
	t.Helper()
	e := &env{t: t}
	dir := t.TempDir()
	db := sqlite.NewDB(filepath.Join(dir, "pentecost.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	svc := sqlite.NewSessionService(db)
	key, err := auth.LoadOrCreateKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	e.issuer = auth.NewEmbedded(key)
	verifier := auth.NewVerifier(e.issuer)

	rt := realtime.NewServer()
	rt.Sessions, rt.Verifier = svc, verifier
	rt.Presence, rt.Broker = inmem.NewPresence(), inmem.NewBroker()
	rt.WorkerVerifier = auth.NewWorkerSecrets([]string{"w1:" + workerSecret})
	rt.RateLimiter = inmem.NewRateLimiter()
	// Tests open many connections from one address.
	rt.ConnectionLimit, rt.JoinLimit = pentecost.Limit{}, pentecost.Limit{}
	e.reg = prometheus.NewRegistry()
	rt.Registerer = e.reg
	rt.WorkerUpdateInterval = 50 * time.Millisecond
	for _, f := range configure {
		f(rt)
	}
	if err := rt.Open(); err != nil {
		t.Fatal(err)
	}
	e.rt = rt
	e.sessions = rt.NotifyingSessions(svc)

	api := pthttp.NewServer()
	api.Addr = "127.0.0.1:0"
	api.Sessions, api.Verifier = e.sessions, verifier
	api.Registerer, api.Gatherer = prometheus.NewRegistry(), prometheus.NewRegistry()
	api.Handle("GET /ws", realtimeRecorder{e, rt})
	if err := api.Open(); err != nil {
		t.Fatal(err)
	}
	e.api = api
	e.URL = api.URL()
	e.WSURL = "ws" + strings.TrimPrefix(e.URL, "http") + "/ws"
	t.Cleanup(func() {
		_ = rt.Close()
		_ = api.Close()
	})
	return e
}

// token returns a speaker token for user id.
func (e *env) token(id string) string {
	e.t.Helper()
	tok, err := e.issuer.IssueToken(context.Background(), &pentecost.User{ID: id, Name: id}, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// createSession creates a session owned by user id with English as source.
func (e *env) createSession(id string) string {
	e.t.Helper()
	s := &pentecost.Session{SourceLanguage: "en", QualityTier: pentecost.QualityStandard}
	ctx := pentecost.NewContextWithUser(context.Background(), &pentecost.User{ID: id, Name: id, Issuer: pentecost.EmbeddedIssuer})
	if err := e.sessions.CreateSession(ctx, s); err != nil {
		e.t.Fatal(err)
	}
	return s.ID
}

// cutAll closes every server-side connection at the TCP level, without a
// WebSocket close: what a network failure looks like to clients.
func (e *env) cutAll() int {
	e.mu.Lock()
	conns := e.conns
	e.conns = nil
	e.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

// poll waits until cond holds, failing the test after wait.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// chunk returns audio chunk i of n bytes; every chunk differs, so a
// receiver can check them byte for byte.
func chunk(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*131 + j*7 + j>>8)
	}
	b[0], b[1], b[2], b[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return b
}

// chunkIndex returns the i chunk() wrote into b.
func chunkIndex(b []byte) int {
	return int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
}

// realtimeRecorder mounts the realtime server and records the connections
// it takes over, so that a test can cut them.
type realtimeRecorder struct {
	e  *env
	rt *realtime.Server
}

func (h realtimeRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.rt.ServeHTTP(&hijackRecorder{ResponseWriter: w, e: h.e}, r)
}

type hijackRecorder struct {
	http.ResponseWriter
	e *env
}

// Hijack hands the connection over and records it.
func (w *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.e.mu.Lock()
		w.e.conns = append(w.e.conns, c)
		w.e.mu.Unlock()
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *hijackRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// metric returns the sum of a counter or gauge of the realtime server.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
