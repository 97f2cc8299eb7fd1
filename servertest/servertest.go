// Package servertest runs a whole Pentecost server inside a test: a SQLite
// file in a temporary directory, the embedded token issuer, the realtime
// server with in-memory presence and broker, and the HTTP API on a loopback
// port with the WebSocket endpoint mounted at /ws. Only tests import it.
package servertest

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/netip"
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

// DefaultWorkerSecret is the worker credential a server accepts unless the
// WorkerSecret option names another.
const DefaultWorkerSecret = "test-worker-secret"

// pollInterval is how often Poll checks its condition.
const pollInterval = 5 * time.Millisecond

// Server is a running server owned by a test. It is closed when the test ends.
type Server struct {
	// URL is the HTTP base URL; WSURL is the WebSocket endpoint.
	URL, WSURL string

	// DB is the SQLite database and Store the session service over it,
	// which the realtime server uses unwrapped.
	DB    *sqlite.DB
	Store *sqlite.SessionService
	// Sessions is the service the HTTP API uses: Store wrapped so that
	// changes reach connected clients.
	Sessions pentecost.SessionService

	Issuer   *auth.Embedded
	Presence *inmem.Presence
	Broker   *inmem.Broker
	Realtime *realtime.Server
	API      *pthttp.Server
	// Registry receives the realtime server's metrics.
	Registry *prometheus.Registry

	tb    testing.TB
	mu    sync.Mutex
	conns []net.Conn // server-side WebSocket connections, for cutting them
}

// Option adjusts a server before it starts.
type Option func(*config)

type config struct {
	workerSecret   string
	trustedProxies []netip.Prefix
	realtime       []func(*realtime.Server)
	api            []func(*pthttp.Server)
}

// Configure adjusts the realtime server before it is opened. Options apply
// in order, after the harness's own settings.
func Configure(f ...func(*realtime.Server)) Option {
	return func(c *config) { c.realtime = append(c.realtime, f...) }
}

// ConfigureAPI adjusts the HTTP API server before it is opened.
func ConfigureAPI(f ...func(*pthttp.Server)) Option {
	return func(c *config) { c.api = append(c.api, f...) }
}

// TrustedProxies makes the API and the WebSocket endpoint believe the
// X-Forwarded-For of these peers, as `pentecost serve --trusted-proxies`
// does: with 127.0.0.1, a test poses as any client address.
func TrustedProxies(p ...netip.Prefix) Option {
	return func(c *config) { c.trustedProxies = append(c.trustedProxies, p...) }
}

// WorkerSecret sets the one worker credential the server accepts.
func WorkerSecret(secret string) Option {
	return func(c *config) { c.workerSecret = secret }
}

// Start opens a server on 127.0.0.1 with a free port. Rate limits on
// connections and joins, the cap on one client's connections and the limit
// of its lookups of unknown sessions are off, since tests open many
// connections from one address; everything else keeps the realtime
// server's defaults unless an option changes it.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	cfg := config{workerSecret: DefaultWorkerSecret}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{tb: tb}
	dir := tb.TempDir()
	s.DB = sqlite.NewDB(filepath.Join(dir, "pentecost.db"))
	if err := s.DB.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.DB.Close() })
	s.Store = sqlite.NewSessionService(s.DB)
	key, err := auth.LoadOrCreateKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		tb.Fatal(err)
	}
	s.Issuer = auth.NewEmbedded(key)
	verifier := auth.NewVerifier(s.Issuer)

	s.Presence, s.Broker = inmem.NewPresence(), inmem.NewBroker()
	s.Registry = prometheus.NewRegistry()
	rt := realtime.NewServer()
	rt.Sessions, rt.Verifier, rt.Presence, rt.Broker = s.Store, verifier, s.Presence, s.Broker
	rt.WorkerVerifier = auth.NewWorkerSecrets([]string{"w1:" + cfg.workerSecret})
	rt.RateLimiter = inmem.NewRateLimiter()
	rt.ConnectionLimit, rt.JoinLimit = pentecost.Limit{}, pentecost.Limit{}
	rt.MaxConnsPerClient, rt.SessionMissLimit = 0, pentecost.Limit{}
	if trusted := cfg.trustedProxies; len(trusted) > 0 {
		rt.ClientIP = func(r *http.Request) string { return pthttp.ClientIP(r, trusted).String() }
	}
	rt.Registerer = s.Registry
	for _, f := range cfg.realtime {
		f(rt)
	}
	if err := rt.Open(); err != nil {
		tb.Fatal(err)
	}
	s.Realtime = rt
	s.Sessions = rt.NotifyingSessions(s.Store)

	api := pthttp.NewServer()
	api.Addr = "127.0.0.1:0"
	api.Sessions, api.Verifier = s.Sessions, verifier
	api.Registerer, api.Gatherer = prometheus.NewRegistry(), prometheus.NewRegistry()
	api.Handle("GET /ws", recorder{s})
	api.TrustedProxies = cfg.trustedProxies
	api.Lookups = rt.Lookups // one limit of lookups that miss, as in pentecost serve
	for _, f := range cfg.api {
		f(api)
	}
	if err := api.Open(); err != nil {
		_ = rt.Close()
		tb.Fatal(err)
	}
	s.API = api
	s.URL = api.URL()
	s.WSURL = "ws" + strings.TrimPrefix(s.URL, "http") + "/ws"
	tb.Cleanup(func() {
		_ = rt.Close()
		_ = api.Close()
	})
	return s
}

// Token returns an hour-long speaker token for the embedded user id.
func (s *Server) Token(userID string) string {
	s.tb.Helper()
	tok, err := s.Issuer.IssueToken(context.Background(), &pentecost.User{ID: userID, Name: userID}, time.Hour)
	if err != nil {
		s.tb.Fatal(err)
	}
	return tok
}

// CreateSession creates a standard-quality session owned by the embedded
// user id, with lang as its source language.
func (s *Server) CreateSession(userID, lang string) *pentecost.Session {
	s.tb.Helper()
	sess := &pentecost.Session{SourceLanguage: lang, QualityTier: pentecost.QualityStandard}
	u := &pentecost.User{ID: userID, Name: userID, Issuer: pentecost.EmbeddedIssuer}
	if err := s.Sessions.CreateSession(pentecost.NewContextWithUser(context.Background(), u), sess); err != nil {
		s.tb.Fatal(err)
	}
	return sess
}

// Conns returns the server-side WebSocket connections in the order the
// server took them, including ones already closed.
func (s *Server) Conns() []net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Conn(nil), s.conns...)
}

// CutAll closes every server-side connection at the TCP level, without a
// WebSocket close: what a network failure looks like to clients. It returns
// how many connections it cut; later connections are recorded afresh.
func (s *Server) CutAll() int {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

// Poll waits until cond holds, failing the test after timeout.
func Poll(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(pollInterval)
	}
}

// recorder mounts the realtime server and records the connections it takes
// over.
type recorder struct{ s *Server }

func (h recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.s.Realtime.ServeHTTP(&hijackRecorder{ResponseWriter: w, s: h.s}, r)
}

type hijackRecorder struct {
	http.ResponseWriter
	s *Server
}

// Hijack hands the connection over and records it.
func (w *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.s.mu.Lock()
		w.s.conns = append(w.s.conns, c)
		w.s.mu.Unlock()
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *hijackRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
