package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/certs"
)

// clock is a settable time source shared by a test and a Local.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// addrs is a settable interface list.
type addrs struct {
	mu sync.Mutex
	a  []netip.Addr
}

func (a *addrs) List() ([]netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.a), nil
}
func (a *addrs) Set(s ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.a = nil
	for _, v := range s {
		a.a = append(a.a, netip.MustParseAddr(v))
	}
}

func mustOpenLocal(tb testing.TB, dir string, clk *clock, ad *addrs) *certs.Local {
	tb.Helper()
	l := certs.NewLocal(dir)
	l.Hostname = "lectern"
	l.Now = clk.Now
	l.Addrs = ad.List
	if err := l.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func newClock() *clock { return &clock{t: time.Now()} }

// verify checks that leaf chains to ca for name (a DNS name or an IP) at t.
func verify(tb testing.TB, ca, leaf *x509.Certificate, name string, t time.Time) {
	tb.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: t}); err != nil {
		tb.Errorf("%s: %v", name, err)
	}
}

func TestLocal_CreatedOnceAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	clk, ad := newClock(), &addrs{}
	ad.Set("192.168.1.20")
	l := mustOpenLocal(t, dir, clk, ad)
	ca, leaf := l.CA(), l.Leaf()
	if ca.Subject.CommonName != "Pentecost local CA (lectern)" || !ca.IsCA || ca.NotAfter.Sub(clk.Now()) < 9*365*24*time.Hour {
		t.Fatalf("CA: %s, CA=%v, until %s", ca.Subject, ca.IsCA, ca.NotAfter)
	}
	if ca.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("CA key %v", ca.PublicKeyAlgorithm)
	}
	for name, want := range map[string]os.FileMode{"": 0o700, certs.CAKeyFile: 0o600, certs.LeafKeyFile: 0o600, certs.CAFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %o, want %o", name, fi.Mode().Perm(), want)
		}
	}
	// No temporary files left behind by the atomic writes.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name()[0] == '.' {
			t.Errorf("left over: %s", e.Name())
		}
	}
	l.Close()

	// A restart reuses the CA (same key) and the certificate.
	l2 := mustOpenLocal(t, dir, clk, ad)
	if !l2.CA().Equal(ca) || !l2.Leaf().Equal(leaf) {
		t.Fatal("restart made a new CA or certificate")
	}

	t.Run("ErrHalfCA", func(t *testing.T) {
		dir2 := t.TempDir()
		b, _ := os.ReadFile(filepath.Join(dir, certs.CAFile))
		os.WriteFile(filepath.Join(dir2, certs.CAFile), b, 0o644)
		l := certs.NewLocal(dir2)
		if err := l.Open(); err == nil {
			l.Close()
			t.Fatal("Open made a new CA beside an orphaned ca.pem")
		}
	})
}

func TestLocal_Names(t *testing.T) {
	clk, ad := newClock(), &addrs{}
	ad.Set("192.168.1.20", "2001:db8::20")
	l := mustOpenLocal(t, t.TempDir(), clk, ad)
	leaf := l.Leaf()
	if want := []string{"lectern", "lectern.local", "localhost"}; !slices.Equal(leaf.DNSNames, want) {
		t.Fatalf("names %v, want %v", leaf.DNSNames, want)
	}
	for _, name := range []string{"lectern", "lectern.local", "localhost", "127.0.0.1", "::1", "192.168.1.20", "2001:db8::20"} {
		verify(t, l.CA(), leaf, name, clk.Now())
	}
	if d := leaf.NotAfter.Sub(clk.Now()); d < 89*24*time.Hour || d > 91*24*time.Hour {
		t.Fatalf("valid for %s", d)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Fatal("no serverAuth")
	}

	t.Run("LANAddrs", func(t *testing.T) {
		got, err := certs.LANAddrs()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range got {
			if a.IsLoopback() || a.IsLinkLocalUnicast() {
				t.Errorf("LANAddrs returned %s", a)
			}
		}
	})
}

// TestLocal_Renewal moves the clock to within RenewBefore of expiry and
// checks that a TLS client of a running server gets the new certificate
// without a restart, with the same key (the SPKI hash survives).
func TestLocal_Renewal(t *testing.T) {
	dir := t.TempDir()
	clk, ad := newClock(), &addrs{}
	l := mustOpenLocal(t, dir, clk, ad)
	first := l.Leaf()
	srv, pool := serveTLS(t, l)
	c, err := tls.Dial("tcp", srv, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("client trusting the CA: %v", err)
	}
	c.Close()

	if renewed, err := l.Check(); err != nil || renewed {
		t.Fatalf("fresh certificate renewed: %v %v", renewed, err)
	}
	clk.Add(first.NotAfter.Sub(clk.Now()) - certs.DefaultRenewBefore + time.Minute)
	if renewed, err := l.Check(); err != nil || !renewed {
		t.Fatalf("due certificate not renewed: %v %v", renewed, err)
	}
	second := l.Leaf()
	if !second.NotAfter.After(first.NotAfter) || certs.SPKIHash(second) != certs.SPKIHash(first) {
		t.Fatalf("renewed until %s (was %s); SPKI %s → %s", second.NotAfter, first.NotAfter, certs.SPKIHash(first), certs.SPKIHash(second))
	}
	if got := peerLeaf(t, srv, pool); !got.Equal(second) {
		t.Fatal("server still serves the old certificate")
	}
	// The renewal was written: a restart keeps it.
	l.Close()
	if l2 := mustOpenLocal(t, dir, clk, ad); !l2.Leaf().Equal(second) {
		t.Fatal("renewal not persisted")
	}

	t.Run("AddressChange", func(t *testing.T) {
		ad.Set("10.0.0.7")
		if renewed, err := l.Check(); err != nil || !renewed {
			t.Fatalf("new address: renewed=%v %v", renewed, err)
		}
		verify(t, l.CA(), l.Leaf(), "10.0.0.7", clk.Now())
	})

	t.Run("Background", func(t *testing.T) {
		clk, ad := newClock(), &addrs{}
		l := certs.NewLocal(t.TempDir())
		l.Now, l.Addrs, l.CheckInterval = clk.Now, ad.List, 10*time.Millisecond
		if err := l.Open(); err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		before := l.Leaf()
		ad.Set("10.9.8.7")
		waitFor(t, func() bool { return !l.Leaf().Equal(before) })
		verify(t, l.CA(), l.Leaf(), "10.9.8.7", clk.Now())
	})
}

// TestLocal_CAHandler fetches /ca.crt as a phone would.
func TestLocal_CAHandler(t *testing.T) {
	l := mustOpenLocal(t, t.TempDir(), newClock(), &addrs{})
	srv := httptest.NewServer(l)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-x509-ca-cert" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	got, err := x509.ParseCertificate(body) // DER
	if err != nil || !got.Equal(l.CA()) {
		t.Fatalf("not the CA: %v", err)
	}
	// The same certificate as the PEM file in the data dir.
	b, _ := os.ReadFile(l.CAPath())
	if p, _ := pem.Decode(b); p == nil || string(p.Bytes) != string(body) {
		t.Fatal("ca.pem differs from /ca.crt")
	}
}

// serveTLS runs an HTTPS server with l's certificates on loopback and
// returns its address and a pool trusting l's CA.
func serveTLS(tb testing.TB, l *certs.Local) (string, *x509.CertPool) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(certs.NewListener(ln, l.TLSConfig(), 0))
	tb.Cleanup(func() { srv.Close() })
	pool := x509.NewCertPool()
	pool.AddCert(l.CA())
	return ln.Addr().String(), pool
}

func peerLeaf(tb testing.TB, addr string, pool *x509.CertPool) *x509.Certificate {
	tb.Helper()
	// The test's clock may be ahead of the real one: verify() checks the
	// chain at the test's time.
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
