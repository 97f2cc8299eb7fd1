package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/letsencrypt/challtestsrv"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/pentecost/pentecost/certs"
)

// pebble is Let's Encrypt's ACME test server, run in-process: its
// directory over HTTPS on loopback, and a DNS server (challtestsrv) that
// resolves every name to 127.0.0.1, so that its validation authority
// connects to this test's server for real.
type pebble struct {
	DirectoryURL string
	Client       *http.Client // trusts the directory's HTTPS certificate
	Roots        *x509.CertPool
}

// startPebble starts Pebble whose VA validates HTTP-01 on httpPort and
// TLS-ALPN-01 on tlsPort of 127.0.0.1.
func startPebble(t *testing.T, httpPort, tlsPort int) *pebble {
	t.Helper()
	// Pebble's documented test settings: no random sleep before
	// validating, no deliberately rejected nonces.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(os.Stderr, "pebble ", log.Lmicroseconds)
	}

	dnsAddr := freeAddr(t)
	dnsSrv, err := challtestsrv.New(challtestsrv.Config{DNSAddrs: []string{dnsAddr}, Log: logger})
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv.SetDefaultDNSIPv4("127.0.0.1")
	dnsSrv.SetDefaultDNSIPv6("") // the server under test listens on IPv4 only
	go dnsSrv.Run()
	t.Cleanup(dnsSrv.Shutdown)
	waitFor(t, func() bool { // the DNS server answers
		m := new(dns.Msg)
		m.SetQuestion("probe.test.", dns.TypeA)
		c := &dns.Client{Net: "tcp", Timeout: time.Second}
		_, _, err := c.Exchange(m, dnsAddr)
		return err == nil
	})

	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, tlsPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 3, 5)
	dir := httptest.NewTLSServer(front.Handler())
	t.Cleanup(dir.Close)

	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	return &pebble{DirectoryURL: dir.URL + wfe.DirectoryPath, Client: dir.Client(), Roots: roots}
}

// freeAddr returns a loopback address with a free port (for servers that
// take an address rather than a listener).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// TestACME_Pebble obtains real certificates from Pebble, once through
// TLS-ALPN-01 on the TLS port and once through HTTP-01 on the challenge
// port (Pebble's VA cannot reach a TLS port there, so autocert falls back
// to HTTP-01), and checks that the TLS port then serves a certificate
// chaining to Pebble's root, for the domain, with WebSockets' HTTP/1.1.
func TestACME_Pebble(t *testing.T) {
	for _, challenge := range []string{"tls-alpn-01", "http-01"} {
		t.Run(challenge, func(t *testing.T) {
			const domain = "live.pentecost.test"
			tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			tlsPort := tlsLn.Addr().(*net.TCPAddr).Port
			httpAddr := freeAddr(t)
			_, hp, _ := net.SplitHostPort(httpAddr)
			httpPort, _ := strconv.Atoi(hp)

			vaHTTP, vaTLS := closedPort(t), tlsPort
			if challenge == "http-01" {
				vaHTTP, vaTLS = httpPort, closedPort(t)
			}
			p := startPebble(t, vaHTTP, vaTLS)

			cache := filepath.Join(t.TempDir(), "acme")
			a := certs.NewACME([]string{domain}, cache)
			a.DirectoryURL, a.HTTPClient = p.DirectoryURL, p.Client
			a.HTTPAddr, a.TLSPort = httpAddr, tlsPort
			if testing.Verbose() {
				a.Logger = testLogger(t)
			}
			if err := a.Open(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello "+r.Proto) }),
				ErrorLog: log.New(io.Discard, "", 0)}
			go srv.Serve(certs.NewListener(tlsLn, a.TLSConfig(), 0))
			t.Cleanup(func() { srv.Close() })

			// The first connection for the domain makes autocert order the
			// certificate; the handshake waits for it.
			c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: p.Roots, ServerName: domain},
			}}
			resp, err := c.Get("https://127.0.0.1:" + strconv.Itoa(tlsPort) + "/")
			if err != nil {
				t.Fatalf("HTTPS with a certificate from Pebble: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "hello HTTP/1.1" {
				t.Fatalf("%q", body)
			}
			leaf := resp.TLS.PeerCertificates[0]
			if leaf.VerifyHostname(domain) != nil {
				t.Fatalf("certificate for %v", leaf.DNSNames)
			}
			// Cached in the data dir, private.
			if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("cache dir: %v %v", fi, err)
			}
			if _, err := os.Stat(filepath.Join(cache, domain)); err != nil {
				t.Fatalf("certificate not cached: %v", err)
			}
		})
	}
}

// TestACME_Config checks what does not need a CA: the host policy, the
// TLS configuration, the cache directory and the :80 redirect.
func TestACME_Config(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "acme")
	a := certs.NewACME([]string{"live.example.org", "www.live.example.org"}, cache)
	a.HTTPAddr, a.TLSPort = "127.0.0.1:0", 443
	// A CA that is never reached: the policy refuses before any order.
	a.DirectoryURL = "https://127.0.0.1:1/directory"
	if err := a.Open(); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir: %v %v", fi, err)
	}
	m := a.Manager()
	if err := m.HostPolicy(t.Context(), "live.example.org"); err != nil {
		t.Fatal(err)
	}
	if err := m.HostPolicy(t.Context(), "other.example.org"); err == nil {
		t.Fatal("host policy accepts a name not listed")
	}
	cfg := a.TLSConfig()
	if cfg.GetCertificate == nil || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatal("TLS config does not get certificates from autocert")
	}
	for _, p := range cfg.NextProtos {
		if p == "h2" {
			t.Fatal("h2 offered: WebSockets need HTTP/1.1")
		}
	}
	if _, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.example.org"}); err == nil {
		t.Fatal("certificate handed out for a name not listed")
	}

	t.Run("Redirect", func(t *testing.T) {
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, _ := http.NewRequest("GET", "http://"+a.HTTPListenAddr().String()+"/speak?x=1", nil)
		req.Host = "live.example.org"
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 308 || resp.Header.Get("Location") != "https://live.example.org/speak?x=1" {
			t.Fatalf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		// An unknown challenge token is not redirected.
		req, _ = http.NewRequest("GET", "http://"+a.HTTPListenAddr().String()+"/.well-known/acme-challenge/nope", nil)
		req.Host = "live.example.org"
		if resp, err = noFollow.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("challenge path: %d", resp.StatusCode)
		}
	})

	t.Run("PortTaken", func(t *testing.T) {
		b := certs.NewACME([]string{"live.example.org"}, cache)
		b.HTTPAddr = a.HTTPListenAddr().String()
		if err := b.Open(); err != nil {
			t.Fatalf("a taken :80 must not stop the server: %v", err)
		}
		defer b.Close()
		if b.HTTPListenAddr() != nil {
			t.Fatal("listening on a taken port")
		}
	})

	t.Run("ValidDomain", func(t *testing.T) {
		for _, bad := range []string{"", "localhost", "192.168.1.20", "*.example.org", "Live.example.org", "a b.org"} {
			if certs.ValidDomain(bad) == nil {
				t.Errorf("%q accepted", bad)
			}
		}
		if err := certs.ValidDomain("live.example.org"); err != nil {
			t.Error(err)
		}
	})
}
