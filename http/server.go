// Package http serves Pentecost's REST API: sessions, languages, sign-in,
// health and metrics. Handlers talk only to the root package's interfaces;
// cmd/pentecost wires the concrete services in. The package also holds a Go
// client of the API (client.go).
package http

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/certs"
)

// Defaults for a new Server.
const (
	DefaultAddr         = ":8080"
	DefaultTokenTTL     = 12 * time.Hour
	DefaultMaxBodyBytes = 64 << 10
	DefaultReadTimeout  = 30 * time.Second

	// shutdownTimeout bounds how long Close waits for requests in flight.
	shutdownTimeout = 10 * time.Second
)

// Limits are the rate limits the API enforces. A zero Limit disables one.
type Limits struct {
	// SessionsPerHour limits session creation per speaker.
	SessionsPerHour pentecost.Limit
	// LoginAttemptsPerMinute limits sign-in attempts per client IP.
	LoginAttemptsPerMinute pentecost.Limit
	// LoginAttemptsPerAccount limits sign-in attempts per account, from
	// any number of IPs.
	LoginAttemptsPerAccount LoginBackoff
	// SessionMisses limits lookups of session IDs that do not exist, per
	// client (ClientKey), on every route that takes a session ID; a client
	// over it is refused every such lookup until it is under it again
	// (lookup.go). Lookups that find a session are not counted.
	SessionMisses pentecost.Limit
}

// DefaultLimits returns the original system's limits, 50 sessions an hour
// per speaker and 10 sign-in attempts a minute per IP, and a backoff per
// account: 10 attempts a minute and 40 a day, then one every 15 minutes.
// An owner signing in at most a few times a day never meets it; guessing
// from any number of IPs gets about 130 tries a day.
func DefaultLimits() Limits {
	return Limits{
		SessionsPerHour:        pentecost.Limit{Events: 50, Per: time.Hour},
		LoginAttemptsPerMinute: pentecost.Limit{Events: 10, Per: time.Minute},
		LoginAttemptsPerAccount: LoginBackoff{
			Burst: pentecost.Limit{Events: 10, Per: time.Minute},
			Daily: pentecost.Limit{Events: 40, Per: 24 * time.Hour},
			Slow:  pentecost.Limit{Events: 1, Per: 15 * time.Minute},
		},
		SessionMisses: DefaultSessionMisses,
	}
}

// Server is the HTTP server of the REST API. Set its fields, then call Open.
type Server struct {
	// Addr is the address to listen on (DefaultAddr). Port 0 picks a free port.
	Addr string
	// TLSCertFile and TLSKeyFile, when both set, make the server speak HTTPS
	// with TLS 1.2 or later: on TLSAddr when it is set, else on Addr.
	TLSCertFile, TLSKeyFile string
	// TLSConfig, instead of the files, supplies the certificates (e.g. a
	// GetCertificate that renews them without a restart).
	TLSConfig *tls.Config
	// TLSAddr, when set with a certificate, is a second address serving
	// the same routes over HTTPS and WSS while Addr stays plain HTTP.
	TLSAddr string

	// Logger receives the access log and errors. Defaults to discarding.
	Logger *slog.Logger

	// Sessions is required.
	Sessions pentecost.SessionService
	// Verifier checks bearer tokens; it is required.
	Verifier pentecost.TokenVerifier
	// Accounts and Issuer enable POST /auth/login; when either is nil that
	// route answers NOT_FOUND.
	Accounts pentecost.PasswordAuthenticator
	Issuer   pentecost.TokenIssuer
	// TokenTTL is the lifetime of tokens issued at login (DefaultTokenTTL).
	TokenTTL time.Duration

	// RateLimiter enforces Limits. When nil nothing is rate limited. A
	// shared one makes the limits hold across nodes.
	RateLimiter pentecost.RateLimiter
	Limits      Limits
	// DeviceKey signs the device cookies that exempt a browser which
	// signed in to an account before from that account's backoff. Nodes
	// sharing accounts must share it (see DeriveDeviceKey); when empty, a
	// random key is made at Open and cookies last until a restart.
	DeviceKey []byte

	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// ClientIPv4Prefix and ClientIPv6Prefix are how many leading bits of a
	// client's address per-client limits count as one client (ClientKey);
	// 0 means DefaultClientIPv4Prefix (32) and DefaultClientIPv6Prefix (64).
	ClientIPv4Prefix, ClientIPv6Prefix int
	// Lookups enforces Limits.SessionMisses (lookup.go). Give the API and
	// the WebSocket endpoint of a node the same one, so that a client
	// refused on one is refused on the other; when nil, Open makes one.
	Lookups *LookupLimiter

	// Registerer receives the server's metrics and Gatherer serves /metrics.
	// When both are nil a new registry with Go and process collectors is used.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// MetricsAddr, when set, is a listener of its own serving /metrics
	// alone, and /metrics on Addr answers NOT_FOUND to everyone. When
	// empty, /metrics on Addr answers only clients on loopback or private
	// addresses (see handleMetrics).
	MetricsAddr string

	// Ready reports whether the server can do useful work (e.g. the store
	// answers); /readyz answers 503 while it returns an error. Nil means ready.
	Ready func(ctx context.Context) error

	// MaxBodyBytes bounds request bodies of the API (DefaultMaxBodyBytes).
	MaxBodyBytes int64

	// ReadTimeout bounds how long an API request may take to arrive, body
	// included, counted from when its route is matched (DefaultReadTimeout).
	// A client trickling its body is cut off after it, so that it cannot
	// hold a connection, or a graceful shutdown, for ever. As with
	// http.Server.ReadTimeout, a request still being handled when it passes
	// has its context ended. Handlers mounted with Handle, such as
	// WebSockets, are not subject to it.
	ReadTimeout time.Duration

	// Now returns the current time. Tests replace it.
	Now func() time.Time

	mux     *http.ServeMux
	metrics *metrics

	mu        sync.Mutex
	ln        net.Listener // Addr
	tlsLn     net.Listener // TLSAddr, when set
	metricsLn net.Listener // MetricsAddr, when set
	server    *http.Server
	metricsSv *http.Server  // serves metricsLn
	tls       bool          // whether ln speaks TLS
	done      chan struct{} // closed when every Serve has returned
}

// NewServer returns a Server with default settings.
func NewServer() *Server {
	return &Server{
		Addr:         DefaultAddr,
		Logger:       slog.New(slog.DiscardHandler),
		TokenTTL:     DefaultTokenTTL,
		Limits:       DefaultLimits(),
		MaxBodyBytes: DefaultMaxBodyBytes,
		ReadTimeout:  DefaultReadTimeout,
		Now:          time.Now,
		mux:          http.NewServeMux(),
	}
}

// Handle mounts h at pattern (a ServeMux pattern such as "GET /ws") beside
// the API. Call it before Open. The handler runs behind the same correlation
// ID, recovery, logging and metrics middleware as the API, but its body is
// not size-limited and no authentication is applied.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.mounted(h))
}

// Open checks the configuration, registers the routes and metrics, binds
// the listener and starts serving in the background. Errors such as a port
// in use or an unreadable certificate are returned at once.
func (s *Server) Open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("http: server already open")
	}
	if s.Sessions == nil {
		return errors.New("http: Sessions is required")
	}
	if s.Verifier == nil {
		return errors.New("http: Verifier is required")
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		return errors.New("http: TLSCertFile and TLSKeyFile must be set together")
	}
	s.setDefaults()
	if s.Lookups == nil {
		s.Lookups = NewLookupLimiter(s.RateLimiter, s.Limits.SessionMisses)
	}

	if s.Registerer == nil && s.Gatherer == nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
		s.Registerer, s.Gatherer = reg, reg
	}
	if s.Gatherer == nil {
		g, ok := s.Registerer.(prometheus.Gatherer)
		if !ok {
			return errors.New("http: Gatherer is required with a custom Registerer")
		}
		s.Gatherer = g
	}
	if s.Registerer == nil {
		return errors.New("http: Registerer is required with a custom Gatherer")
	}

	tlsConfig, err := s.tlsConfig()
	if err != nil {
		return err
	}
	if s.TLSAddr != "" && tlsConfig == nil {
		return errors.New("http: TLSAddr needs TLSConfig or TLSCertFile and TLSKeyFile")
	}

	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("http: listen: %w", err)
	}
	var tlsLn, metricsLn net.Listener
	closeAll := func() {
		for _, l := range []net.Listener{ln, tlsLn, metricsLn} {
			if l != nil {
				l.Close()
			}
		}
	}
	if s.TLSAddr != "" {
		if tlsLn, err = net.Listen("tcp", s.TLSAddr); err != nil {
			closeAll()
			return fmt.Errorf("http: listen on TLS address: %w", err)
		}
	}
	if s.MetricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", s.MetricsAddr); err != nil {
			closeAll()
			return fmt.Errorf("http: listen on metrics address: %w", err)
		}
	}
	// Metrics and routes are registered once the port is ours, so that a
	// failed Open can be retried.
	if s.metrics == nil {
		m, err := newMetrics(s.Registerer, s.Gatherer, s.activeSessions)
		if err != nil {
			closeAll()
			return fmt.Errorf("http: register metrics: %w", err)
		}
		s.metrics = m
		for _, rt := range routes {
			s.mux.Handle(rt.Method+" "+rt.Path, s.route(rt))
		}
	}
	// Every TLS port answers plain HTTP with a redirect to https, not with
	// a failed handshake the browser shows as a broken page.
	if tlsConfig != nil && tlsLn != nil {
		tlsLn = certs.NewListener(tlsLn, tlsConfig, 0)
	} else if tlsConfig != nil {
		ln = certs.NewListener(ln, tlsConfig, 0)
		s.tls = true
	}
	s.ln, s.tlsLn, s.metricsLn = ln, tlsLn, metricsLn
	s.server = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(serverLogWriter{s.Logger}, "", 0),
	}
	s.metricsSv = nil
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.metrics.handler)
		s.metricsSv = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       s.ReadTimeout,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          log.New(serverLogWriter{s.Logger}, "", 0),
		}
	}
	s.done = make(chan struct{})
	var wg sync.WaitGroup
	for _, l := range []struct {
		ln  net.Listener
		srv *http.Server
	}{{ln, s.server}, {tlsLn, s.server}, {metricsLn, s.metricsSv}} {
		if l.ln == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.Logger.Error("http server stopped", logKeyError, err)
			}
		}()
	}
	go func(done chan struct{}) {
		wg.Wait()
		close(done)
	}(s.done)
	return nil
}

// tlsConfig returns the TLS configuration from TLSConfig or the
// certificate files, or nil when the server has none. It offers HTTP/1.1
// only: WebSockets are upgraded from HTTP/1.1 requests.
func (s *Server) tlsConfig() (*tls.Config, error) {
	var c *tls.Config
	switch {
	case s.TLSConfig != nil:
		c = s.TLSConfig.Clone()
	case s.TLSCertFile != "":
		cert, err := tls.LoadX509KeyPair(s.TLSCertFile, s.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("http: load TLS certificate: %w", err)
		}
		c = &tls.Config{Certificates: []tls.Certificate{cert}}
	default:
		return nil, nil
	}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	c.NextProtos = slices.DeleteFunc(slices.Clone(c.NextProtos), func(p string) bool { return p == "h2" })
	if !slices.Contains(c.NextProtos, "http/1.1") {
		c.NextProtos = append([]string{"http/1.1"}, c.NextProtos...)
	}
	return c, nil
}

func (s *Server) setDefaults() {
	if s.Addr == "" {
		s.Addr = DefaultAddr
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.TokenTTL <= 0 {
		s.TokenTTL = DefaultTokenTTL
	}
	if s.MaxBodyBytes <= 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if s.ReadTimeout <= 0 {
		s.ReadTimeout = DefaultReadTimeout
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if len(s.DeviceKey) == 0 {
		s.DeviceKey = []byte(rand.Text())
	}
}

// Close shuts the server down, giving requests in flight a few seconds to
// finish before their connections are cut.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// Shutdown stops accepting connections and waits for requests in flight
// until ctx ends, then closes what remains. Hijacked connections such as
// WebSockets are not waited for; their owners close them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv, metricsSv, done := s.server, s.metricsSv, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	var err error
	for _, sv := range []*http.Server{srv, metricsSv} {
		if sv == nil {
			continue
		}
		if e := sv.Shutdown(ctx); e != nil {
			err = errors.Join(err, e, sv.Close())
		}
	}
	<-done
	return err
}

// Port returns the port the server listens on, or 0 before Open.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return 0
	}
	return s.ln.Addr().(*net.TCPAddr).Port
}

// URL returns the server's base URL on Addr, such as
// http://127.0.0.1:8080. An unspecified listen address is shown as
// localhost.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	return baseURL(scheme, s.ln.Addr())
}

// MetricsURL returns the URL of /metrics on MetricsAddr, such as
// http://127.0.0.1:9090/metrics, or "" when it has no listener of its own.
func (s *Server) MetricsURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.metricsLn == nil {
		return ""
	}
	return baseURL("http", s.metricsLn.Addr()) + "/metrics"
}

// TLSURL returns the server's base URL on TLSAddr, such as
// https://localhost:8443, or "" when it has none.
func (s *Server) TLSURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tlsLn == nil {
		return ""
	}
	return baseURL("https", s.tlsLn.Addr())
}

// Addrs returns the addresses the server listens on: plain HTTP and
// HTTPS. Either is nil when the server does not listen for it (with only
// TLSCertFile and TLSKeyFile, Addr speaks HTTPS and plain is nil).
func (s *Server) Addrs() (plain, tls *net.TCPAddr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		a := s.ln.Addr().(*net.TCPAddr)
		if s.tls {
			tls = a
		} else {
			plain = a
		}
	}
	if s.tlsLn != nil {
		tls = s.tlsLn.Addr().(*net.TCPAddr)
	}
	return plain, tls
}

func baseURL(scheme string, a net.Addr) string {
	addr := a.(*net.TCPAddr)
	host := "localhost"
	if ip, ok := netip.AddrFromSlice(addr.IP); ok && !ip.IsUnspecified() {
		host = ip.Unmap().String()
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// activeSessions counts sessions that are active or paused, for the gauge.
func (s *Server) activeSessions() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	for _, st := range []pentecost.SessionStatus{pentecost.SessionActive, pentecost.SessionPaused} {
		_, total, err := s.Sessions.FindSessions(ctx, pentecost.SessionFilter{Status: &st, Limit: 1})
		if err != nil {
			s.Logger.Warn("count active sessions", logKeyCode, pentecost.ErrorCode(err), logKeyError, err)
			return math.NaN() // "unknown" to Prometheus, unlike a false zero
		}
		n += total
	}
	return float64(n)
}

// serverLogWriter passes net/http's own messages (failed handshakes and the
// like) to the Logger, with client addresses truncated.
type serverLogWriter struct{ logger *slog.Logger }

func (w serverLogWriter) Write(p []byte) (int, error) {
	msg := redactAddrs(strings.TrimSpace(string(p)))
	if strings.Contains(msg, certs.ErrPlainHTTP.Error()) {
		// Someone typed http:// before the TLS port and was redirected.
		w.logger.Debug(msg)
		return len(p), nil
	}
	w.logger.Warn(msg)
	return len(p), nil
}
