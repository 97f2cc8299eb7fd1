package certs

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// DefaultACMEDirectory is Let's Encrypt's production directory.
const DefaultACMEDirectory = autocert.DefaultACMEDirectory

// ACME obtains and renews certificates for Domains from an ACME CA (Let's
// Encrypt by default) with golang.org/x/crypto/acme/autocert, keeping
// them, and the account key, in CacheDir.
//
// The CA checks that this server answers for each domain, by one of two
// challenges: TLS-ALPN-01 on port 443, answered by TLSConfig's
// GetCertificate, or HTTP-01 on port 80, answered by the server Open
// starts on HTTPAddr, which redirects every other request to https.
// When HTTPAddr cannot be bound Open logs it and carries on: TLS-ALPN-01
// still works when the TLS port is 443.
type ACME struct {
	Domains      []string
	CacheDir     string // created with mode 0700
	DirectoryURL string // DefaultACMEDirectory when empty
	Email        string // optional contact for the CA's expiry notices
	// HTTPAddr is where HTTP-01 challenges and the redirect are served
	// (":80"); empty turns them off.
	HTTPAddr string
	// TLSPort is the port the redirect sends browsers to (443 is left out
	// of the URL).
	TLSPort int
	// HTTPClient talks to the CA (a default client when nil); tests give
	// one trusting their CA's HTTPS certificate.
	HTTPClient *http.Client
	// RenewBefore is how long before expiry certificates are renewed
	// (autocert's default, 30 days, when 0).
	RenewBefore time.Duration

	Logger *slog.Logger

	manager *autocert.Manager
	mu      sync.Mutex
	ln      net.Listener
	srv     *http.Server
	done    chan struct{}
}

// NewACME returns an ACME for domains, caching in cacheDir.
func NewACME(domains []string, cacheDir string) *ACME {
	return &ACME{Domains: domains, CacheDir: cacheDir, HTTPAddr: ":80", TLSPort: 443, Logger: slog.New(slog.DiscardHandler)}
}

// Prepare creates the cache directory and the certificate manager, so
// that TLSConfig can be used; Open calls it when needed.
func (a *ACME) Prepare() error {
	if a.Logger == nil {
		a.Logger = slog.New(slog.DiscardHandler)
	}
	if len(a.Domains) == 0 {
		return errors.New("certs: ACME needs at least one domain")
	}
	if err := os.MkdirAll(a.CacheDir, 0o700); err != nil {
		return fmt.Errorf("certs: ACME cache: %w", err)
	}
	// The cache holds private keys: tighten a directory made by hand.
	if err := os.Chmod(a.CacheDir, 0o700); err != nil {
		return fmt.Errorf("certs: ACME cache: %w", err)
	}
	dir := a.DirectoryURL
	if dir == "" {
		dir = DefaultACMEDirectory
	}
	a.manager = &autocert.Manager{
		Prompt:      autocert.AcceptTOS,
		Cache:       autocert.DirCache(a.CacheDir),
		HostPolicy:  autocert.HostWhitelist(a.Domains...),
		Email:       a.Email,
		RenewBefore: a.RenewBefore,
		Client:      &acme.Client{DirectoryURL: dir, HTTPClient: a.HTTPClient, UserAgent: "pentecost"},
	}
	return nil
}

// Open prepares the certificate manager and, when HTTPAddr can be bound,
// starts the challenge and redirect server there. Certificates are
// obtained on the first TLS connection for each domain.
func (a *ACME) Open() error {
	if a.manager == nil {
		if err := a.Prepare(); err != nil {
			return err
		}
	}
	if a.HTTPAddr == "" {
		return nil
	}
	// HTTPHandler must be called before the first certificate request for
	// autocert to offer HTTP-01 at all.
	challenges := a.manager.HTTPHandler(RedirectHTTPS(a.TLSPort))
	// autocert checks the Host header against the host policy as it is,
	// so "example.org:80" (legal, and what a CA sends on another port)
	// would be refused.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			r.Host = h
		}
		challenges.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", a.HTTPAddr)
	if err != nil {
		a.Logger.Warn("cannot listen for ACME HTTP-01 challenges and the HTTP→HTTPS redirect; certificates can still be obtained by TLS-ALPN-01 when the TLS port is 443",
			"addr", a.HTTPAddr, "error", err)
		return nil
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	a.mu.Lock()
	a.ln, a.srv, a.done = ln, srv, make(chan struct{})
	a.mu.Unlock()
	go func() {
		defer close(a.done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Logger.Error("ACME HTTP server stopped", "error", err)
		}
	}()
	a.Logger.Info("serving ACME HTTP-01 challenges and the HTTP→HTTPS redirect", "addr", ln.Addr().String())
	return nil
}

// Close stops the challenge and redirect server.
func (a *ACME) Close() error {
	a.mu.Lock()
	srv, done := a.srv, a.done
	a.srv = nil
	a.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	<-done
	return err
}

// HTTPListenAddr returns the address the challenge and redirect server
// listens on, or nil when it could not be bound.
func (a *ACME) HTTPListenAddr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return nil
	}
	return a.ln.Addr()
}

// TLSConfig returns a server configuration that obtains certificates on
// demand and answers TLS-ALPN-01 challenges. It offers HTTP/1.1 only (no
// h2), as the rest of the server does, so WebSockets work over it.
func (a *ACME) TLSConfig() *tls.Config {
	c := a.manager.TLSConfig()
	c.MinVersion = tls.VersionTLS12
	c.NextProtos = slices.DeleteFunc(c.NextProtos, func(p string) bool { return p == "h2" })
	return c
}

// Manager returns the autocert manager, for tests and inspection.
func (a *ACME) Manager() *autocert.Manager { return a.manager }

// ValidDomain reports why name cannot be asked of an ACME CA, or nil.
func ValidDomain(name string) error {
	switch {
	case name == "":
		return errors.New("empty domain")
	case net.ParseIP(name) != nil:
		return fmt.Errorf("%s is an IP address: ACME certificates need a DNS name", name)
	case strings.Contains(name, "*"):
		return fmt.Errorf("%s: wildcard certificates need DNS-01, which --tls-auto does not do", name)
	case !strings.Contains(strings.Trim(name, "."), "."):
		return fmt.Errorf("%s is not a public DNS name (such as live.example.org)", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return fmt.Errorf("%s: a domain is lower-case letters, digits, dots and hyphens", name)
		}
	}
	return nil
}
