package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	"github.com/pentecost/pentecost/buildinfo"
	"github.com/pentecost/pentecost/certs"
	pentecosthttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/sqlite"
	"github.com/pentecost/pentecost/web"
)

// Files kept in the data dir.
const (
	dbFile               = "pentecost.db"
	signingKeyFile       = "signing-key.pem"
	workerCredentialFile = "worker-credential"
)

// Main is the running server: the only place where concrete types meet.
type Main struct {
	Config *Config
	Logger *slog.Logger
	Stdout io.Writer
	// Stderr receives what must reach the person starting the server but
	// not the output others may collect: the first admin password.
	Stderr io.Writer

	// SweepInterval is how often idle sessions are ended and old ones purged.
	SweepInterval time.Duration

	// DB is the embedded store (one node); Redis the shared one (several
	// nodes, --redis). Exactly one of them is set while running.
	DB         *sqlite.DB
	Redis      *redis.DB
	Sessions   pentecost.SessionService
	Accounts   *auth.Accounts
	Embedded   *auth.Embedded
	OIDC       []*auth.OIDC
	HTTPServer *pentecosthttp.Server
	Realtime   *realtime.Server

	// Local is the private CA and certificate of --tls-self-signed; ACME
	// the certificate manager of --tls-auto.
	Local *certs.Local
	ACME  *certs.ACME
	// ACMEHTTPAddr is where --tls-auto answers HTTP-01 challenges and
	// redirects to HTTPS (":80"); ACMEHTTPClient talks to the ACME CA
	// (default client when nil). Tests change both.
	ACMEHTTPAddr   string
	ACMEHTTPClient *nethttp.Client

	cancel   context.CancelFunc
	done     chan struct{}
	draining atomic.Bool
}

// NewMain returns a Main for cfg that logs to stderr and prints to stdout.
func NewMain(cfg *Config, stdout, stderr io.Writer) *Main {
	return &Main{
		Config:        cfg,
		Logger:        newLogger(cfg, stderr),
		Stdout:        stdout,
		Stderr:        stderr,
		SweepInterval: 15 * time.Second,
		ACMEHTTPAddr:  ":80",
	}
}

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// Run opens the store, the issuers and the servers. It returns once the
// server is listening; Close stops it.
func (m *Main) Run(ctx context.Context) error {
	cfg := m.Config
	shared, err := m.openStores(ctx)
	if err != nil {
		return err
	}
	m.Accounts = auth.NewAccounts(shared.users)
	if err := m.ensureAdmin(ctx); err != nil {
		return err
	}
	m.Embedded = auth.NewEmbedded(shared.key)
	// Tokens of removed accounts stop working at once.
	m.Embedded.Users = shared.users

	oidcConfigs, err := oidcConfigs(cfg)
	if err != nil {
		return err
	}
	// NewVerifier would silently ignore an issuer that clashes with the
	// embedded one: refuse to start instead.
	if err := auth.CheckIssuers(m.Embedded, oidcConfigs...); err != nil {
		return err
	}
	for _, oc := range oidcConfigs {
		o := auth.NewOIDC(oc)
		o.Logger = m.Logger.With("component", "auth")
		// Open does not fail when the JWKS is unreachable: that issuer's
		// speakers are refused until it answers, everyone else carries on.
		if err := o.Open(ctx); err != nil {
			return fmt.Errorf("OIDC issuer %s: %w", oc.Name, err)
		}
		m.OIDC = append(m.OIDC, o)
	}
	verifier := auth.NewVerifier(m.Embedded, m.OIDC...)
	verifier.Logger = m.Logger.With("component", "auth")

	workerSecrets, err := m.workerSecrets(ctx)
	if err != nil {
		return err
	}

	registry := prometheus.NewRegistry()
	limiter := shared.limiter

	rt := realtime.NewServer()
	rt.Logger = m.Logger.With("component", "realtime")
	rt.Sessions = m.Sessions // unwrapped: realtime announces its own changes
	rt.Verifier = verifier
	rt.Presence = shared.presence
	rt.Broker = shared.broker
	rt.PresenceRefresh = shared.refresh
	rt.WorkerVerifier = auth.NewWorkerSecrets(workerSecrets)
	rt.RateLimiter = limiter
	rt.Registerer = registry
	rt.ClientIP = func(r *nethttp.Request) string { return pentecosthttp.ClientIP(r, cfg.TrustedProxies).String() }
	// One client is one client to every limit, over HTTP and WebSocket.
	rt.ClientKey = func(r *nethttp.Request) string {
		return pentecosthttp.ClientKey(pentecosthttp.ClientIP(r, cfg.TrustedProxies), cfg.ClientIPv4Prefix, cfg.ClientIPv6Prefix)
	}
	rt.MaxConnsPerClient = cfg.MaxConnsPerClient
	// One limiter of lookups of unknown sessions for the API and the
	// WebSocket: a client refused by one is refused by the other.
	lookups := pentecosthttp.NewLookupLimiter(limiter, pentecost.Limit{Events: cfg.SessionMissesPerMin, Per: time.Minute})
	rt.Lookups = lookups
	// Every node has the signing key: a refresh landing on another node
	// verifies the ticket its old node issued, also after a restart.
	rt.TicketKey = realtime.DeriveTicketKey(shared.key.Seed())
	rt.AllowedOrigins = cfg.AllowedOrigins
	rt.MaxListeners = cfg.MaxListeners
	rt.HeartbeatInterval, rt.HeartbeatTimeout = cfg.HeartbeatInterval, cfg.HeartbeatTimeout
	rt.RefreshAfter, rt.WarningAfter, rt.MaxConnDuration = cfg.RefreshAfter, cfg.WarningAfter, cfg.MaxConnDuration
	rt.SpeakerGrace = cfg.SpeakerGrace
	rt.SilenceWarning = cfg.SilenceWarning
	rt.AccountCheckInterval = cfg.AccountCheck
	rt.WriteCoalesce, rt.CoalesceAbove = cfg.WriteCoalesce, cfg.CoalesceAbove
	rt.NoIOURing = !cfg.IOURing
	rt.MaxFrameAge = cfg.MaxFrameAge
	rt.DrainTimeout = cfg.ShutdownTimeout
	rt.ConnectionLimit = pentecost.Limit{Events: cfg.ConnAttemptsPerMin, Per: time.Minute}
	rt.JoinLimit = pentecost.Limit{Events: cfg.ListenerJoinsPerMin, Per: time.Minute}
	rt.HeartbeatLimit = pentecost.Limit{Events: cfg.HeartbeatsPerMin, Per: time.Minute}
	if m.Redis == nil {
		// One node: no listener survived its restart. With Redis, other
		// nodes' listeners are live and presence expires a dead node's.
		if err := m.resetListenerCounts(ctx); err != nil {
			return err
		}
	}
	if err := rt.Open(); err != nil {
		return fmt.Errorf("realtime: %w", err)
	}
	m.Realtime = rt

	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.Read().Collector())
	if m.Redis != nil {
		registry.MustRegister(redisUpGauge(m.Redis))
	}

	s := pentecosthttp.NewServer()
	s.Addr = cfg.Addr
	s.TLSCertFile, s.TLSKeyFile = cfg.TLSCert, cfg.TLSKey
	s.TLSAddr = cfg.TLSAddr
	if err := m.openCerts(s); err != nil {
		return err
	}
	s.Logger = m.Logger.With("component", "http")
	s.Sessions = rt.NotifyingSessions(m.Sessions)
	s.Verifier = verifier
	s.Accounts = m.Accounts
	s.Issuer = m.Embedded
	s.TokenTTL = cfg.TokenTTL
	s.RateLimiter = limiter
	s.Limits.SessionsPerHour = pentecost.Limit{Events: cfg.SessionsPerHour, Per: time.Hour}
	s.Limits.LoginAttemptsPerMinute = pentecost.Limit{Events: cfg.LoginAttemptsPerMin, Per: time.Minute}
	// Every node has the signing key, so every node accepts every node's
	// device cookies, also after a restart.
	s.DeviceKey = pentecosthttp.DeriveDeviceKey(shared.key.Seed())
	s.MetricsAddr = cfg.MetricsAddr
	s.TrustedProxies = cfg.TrustedProxies
	s.ClientIPv4Prefix, s.ClientIPv6Prefix = cfg.ClientIPv4Prefix, cfg.ClientIPv6Prefix
	s.Lookups = lookups
	s.Registerer, s.Gatherer = registry, registry
	s.Ready = func(ctx context.Context) error {
		if m.draining.Load() {
			// Balancers' health checks take a draining node out, so that
			// its clients' refresh connections go to the other nodes.
			return pentecost.Errorf(pentecost.EUNAVAILABLE, "Draining.")
		}
		return shared.ping(ctx)
	}
	s.Handle("GET /ws", rt)
	if m.Local != nil {
		// For phones and laptops that want to trust the CA rather than
		// click through a warning; served on both ports.
		s.Handle("GET /ca.crt", m.Local)
	}
	pages := web.NewHandler()
	pages.PublicURL = cfg.PublicURL
	pages.SignInLinks = cfg.SignInLinks
	pages.Logger = m.Logger.With("component", "web")
	if cfg.TLSSelfSigned {
		// The speaker is on HTTPS with a private CA; listener links point
		// at plain HTTP, which phones open without a certificate warning.
		pages.ListenerPort = addrPort(cfg.Addr)
	}
	for _, r := range pages.Routes() {
		s.Handle(r.Pattern, r.Handler)
	}
	if cfg.Pprof {
		// Profiles show what the server is doing: private clients only.
		s.Handle("GET /debug/pprof/", s.PrivateOnly(nethttp.HandlerFunc(pprof.Index)))
		s.Handle("GET /debug/pprof/profile", s.PrivateOnly(nethttp.HandlerFunc(pprof.Profile)))
		s.Handle("GET /debug/pprof/trace", s.PrivateOnly(nethttp.HandlerFunc(pprof.Trace)))
	}
	m.HTTPServer = s
	if err := s.Open(); err != nil {
		if cfg.TLSAddr != "" {
			return fmt.Errorf("listen on %s and %s: %w", cfg.Addr, cfg.TLSAddr, err)
		}
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if plain, _ := s.Addrs(); plain != nil && pages.ListenerPort == 0 && cfg.TLSSelfSigned {
		// --addr with port 0 (tests): known only now, before any client
		// has been told where the server is.
		pages.ListenerPort = plain.Port
	}
	if m.ACME != nil {
		// The :80 redirect sends browsers to the TLS port actually bound.
		_, tlsAddr := s.Addrs()
		m.ACME.TLSPort = tlsAddr.Port
		if err := m.ACME.Open(); err != nil {
			return err
		}
	}

	sweepCtx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go m.sweep(sweepCtx)

	if m.Redis != nil {
		m.Logger.Info("pentecost serving", "url", s.URL(), "tls_url", s.TLSURL(), "redis", redactedRedisURL(cfg.RedisURL))
	} else {
		m.Logger.Info("pentecost serving", "url", s.URL(), "tls_url", s.TLSURL(), "data_dir", cfg.DataDir)
	}
	if u := s.MetricsURL(); u != "" {
		m.Logger.Info("metrics served", "url", u)
	}
	m.announceHTTPS()
	m.announceListeners()
	return nil
}

// Close stops the servers, then the store.
func (m *Main) Close() error {
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	// Drain first: clients are asked to refresh (to another node, or to
	// this one once it is back) while the HTTP server still answers.
	m.draining.Store(true)
	if m.Realtime != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout+5*time.Second)
		keep(m.Realtime.Shutdown(ctx))
		cancel()
	}
	if m.ACME != nil {
		keep(m.ACME.Close())
	}
	if m.HTTPServer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		// Requests still running at the deadline are cut off; that is the
		// timeout doing its job, not a failed shutdown.
		if err := m.HTTPServer.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			keep(err)
		}
		cancel()
	}
	if m.Local != nil {
		keep(m.Local.Close())
	}
	for _, o := range m.OIDC {
		o.Close()
	}
	if m.DB != nil {
		keep(m.DB.Close())
	}
	if m.Redis != nil {
		keep(m.Redis.Close())
	}
	return first
}

// ensureAdmin creates the account `admin`, an admin, when no account is
// one: on first start, or when the accounts were all added as speakers
// (`pentecost users add`) before it. Its password is printed once, so a
// newcomer can sign in at once. Accounts from before roles were brought
// under them by the store's migration (the oldest became the admin).
func (m *Main) ensureAdmin(ctx context.Context) error {
	users, err := m.Accounts.List(ctx)
	if err != nil {
		return fmt.Errorf("list accounts: %w", err)
	}
	for _, u := range users {
		if u.IsAdmin() {
			return nil
		}
	}
	password := auth.GeneratePassword()
	if _, err := m.Accounts.AddWithRole(ctx, "admin", password, pentecost.RoleAdmin); pentecost.ErrorCode(err) == pentecost.ECONFLICT {
		// Another node, starting at the same time, created it; or a
		// speaker has the name.
		if u, err := m.Accounts.Find(ctx, "admin"); err == nil && !u.IsAdmin() {
			m.Logger.Warn("no account is admin, and the name admin is a speaker's: make one admin with `pentecost users role NAME admin`")
		}
		return nil
	} else if err != nil {
		return fmt.Errorf("create admin account: %w", err)
	}
	where := "--data-dir " + m.Config.DataDir
	if m.Redis != nil {
		where = "--redis URL" // the URL may hold a password: not printed
	}
	// Printed, never logged: logs must not hold passwords. On stderr, not
	// stdout: stdout is output for scripts (links, credential paths), and
	// whatever keeps it must not keep a password.
	fmt.Fprintf(m.Stderr, "\nCreated admin account \"admin\" with password: %s\nIt is shown only this once; change it with: pentecost users passwd %s admin\nSign in at /speak to broadcast, or at /admin to manage accounts and sessions.\n\n", password, where)
	return nil
}

// sweep ends idle sessions and purges old ended ones until ctx ends.
func (m *Main) sweep(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.SweepInterval)
	defer t.Stop()
	for {
		m.sweepOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Main) sweepOnce(ctx context.Context) {
	ended, err := m.Sessions.ExpireSessions(ctx)
	if err != nil {
		m.Logger.Error("expire sessions", "error", err)
	} else if len(ended) > 0 {
		m.Logger.Info("ended idle sessions", "count", len(ended))
	}
	for _, sess := range ended {
		if err := m.Realtime.SessionExpired(ctx, sess); err != nil {
			m.Logger.Warn("announce expiry", "session_id", sess.ID, "error", err)
		}
	}
	if n, err := m.Sessions.PurgeSessions(ctx); err != nil {
		m.Logger.Error("purge sessions", "error", err)
	} else if n > 0 {
		m.Logger.Info("purged ended sessions", "count", n)
	}
}

// oidcConfigs turns the OIDC and Cognito settings into issuer configs.
func oidcConfigs(cfg *Config) ([]auth.OIDCConfig, error) {
	var out []auth.OIDCConfig
	for _, spec := range cfg.OIDCIssuers {
		oc, err := auth.ParseOIDCConfig(spec)
		if err != nil {
			return nil, fmt.Errorf("OIDC_ISSUERS: %w", err)
		}
		out = append(out, oc)
	}
	if cfg.CognitoPool != "" {
		out = append(out, auth.CognitoConfig(cfg.CognitoRegion, cfg.CognitoPool, cfg.CognitoClient))
	}
	// Tokens are routed to an issuer by their iss claim, so two issuers
	// with one iss would make one of them unreachable.
	// Users are named "<issuer name>:<sub>", and sessions belong to that
	// name: two issuers with one name would let a user of one act as the
	// user with the same sub at the other.
	seen, names := map[string]string{}, map[string]bool{}
	for _, oc := range out {
		if other, ok := seen[oc.Issuer]; ok {
			return nil, fmt.Errorf("OIDC issuers %s and %s have the same issuer URL %s", other, oc.Name, oc.Issuer)
		}
		if names[oc.Name] {
			return nil, fmt.Errorf("two OIDC issuers are named %s: user IDs (%s:<sub>) would collide; give each its own name", oc.Name, oc.Name)
		}
		seen[oc.Issuer], names[oc.Name] = oc.Name, true
	}
	return out, nil
}

// resetListenerCounts zeroes the stored counts of live sessions at start:
// no connection survives a restart of a single node, and listeners that
// reconnect are counted again, so the count stays exact.
func (m *Main) resetListenerCounts(ctx context.Context) error {
	for _, st := range []pentecost.SessionStatus{pentecost.SessionActive, pentecost.SessionPaused} {
		for offset := 0; ; {
			sessions, _, err := m.Sessions.FindSessions(ctx, pentecost.SessionFilter{Status: &st, Offset: offset, Limit: 1000})
			if err != nil {
				return fmt.Errorf("reset listener counts: %w", err)
			}
			for _, sess := range sessions {
				if sess.ListenerCount == 0 {
					continue
				}
				if err := m.Sessions.SetListenerCount(ctx, sess.ID, 0); err != nil {
					return fmt.Errorf("reset listener counts: %w", err)
				}
			}
			if len(sessions) < 1000 {
				break
			}
			offset += len(sessions)
		}
	}
	return nil
}

// workerSecrets returns the configured worker credentials or, when none
// are configured, the data dir's own, created (and printed) on first use.
func (m *Main) workerSecrets(ctx context.Context) ([]string, error) {
	if len(m.Config.WorkerSecrets) > 0 {
		return m.Config.WorkerSecrets, nil
	}
	if m.Redis != nil {
		// Every node must accept the same workers: the credential is shared.
		secret, err := m.Redis.LoadOrCreateWorkerCredential(ctx)
		if err != nil {
			return nil, fmt.Errorf("worker credential: %w", err)
		}
		return []string{secret}, nil
	}
	path := filepath.Join(m.Config.DataDir, workerCredentialFile)
	if b, err := os.ReadFile(path); err == nil {
		if secret := strings.TrimSpace(string(b)); secret != "" {
			return []string{secret}, nil
		}
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("worker credential: %w", err)
	}
	secret := auth.GeneratePassword() + auth.GeneratePassword()
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("worker credential: %w", err)
	}
	fmt.Fprintf(m.Stdout, "Created a translation worker credential in %s\n", path)
	return []string{secret}, nil
}
