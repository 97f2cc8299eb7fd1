package http_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	phttp "github.com/pentecost/pentecost/http"
)

func mustUnmarshal(tb testing.TB, b []byte, v any) {
	tb.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("unmarshal %s: %v", b, err)
	}
}

func TestServer_Routing(t *testing.T) {
	ts := MustOpenServer(t)

	t.Run("ErrNotFound", func(t *testing.T) {
		for _, p := range []string{"/nope", "/sessions/a/b", "/"} {
			MustError(t, ts.Do(t, Request{Method: "GET", Path: p}), 404, pentecost.ENOTFOUND)
		}
	})

	t.Run("ErrMethodNotAllowed", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "PUT", Path: "/sessions/golden-eagle-427"})
		MustError(t, resp, 405, pentecost.EMETHODNOTALLOWED)
		allow := resp.Header.Get("Allow")
		for _, m := range []string{"GET", "PATCH", "DELETE"} {
			if !strings.Contains(allow, m) {
				t.Fatalf("Allow = %q, missing %s", allow, m)
			}
		}
		MustError(t, ts.Do(t, Request{Method: "DELETE", Path: "/languages"}), 405, pentecost.EMETHODNOTALLOWED)
	})

	t.Run("Healthz", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "GET", Path: "/healthz"})
		if resp.Status != 200 || strings.TrimSpace(string(resp.Body)) != `{"status":"ok"}` {
			t.Fatalf("status %d body %s", resp.Status, resp.Body)
		}
	})
}

func TestServer_CorrelationID(t *testing.T) {
	ts := MustOpenServer(t)

	t.Run("Echoed", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "GET", Path: "/sessions/silver-otter-123", Header: map[string]string{"X-Correlation-ID": "req-42.abc:1"}})
		e := MustError(t, resp, 404, pentecost.ESESSIONNOTFOUND)
		if e.CorrelationID != "req-42.abc:1" {
			t.Fatalf("correlationId = %q", e.CorrelationID)
		}
	})

	t.Run("Generated", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "GET", Path: "/healthz"})
		if id := resp.Header.Get(phttp.CorrelationHeader); len(id) < 16 {
			t.Fatalf("generated id %q", id)
		}
	})

	for _, bad := range []string{strings.Repeat("a", 65), "a b", "<script>", "id\"quote"} {
		t.Run("Replaced", func(t *testing.T) {
			resp := ts.Do(t, Request{Method: "GET", Path: "/nope", Header: map[string]string{"X-Correlation-ID": bad}})
			e := MustError(t, resp, 404, pentecost.ENOTFOUND)
			if e.CorrelationID == bad || e.CorrelationID == "" {
				t.Fatalf("correlationId = %q", e.CorrelationID)
			}
		})
	}
}

func TestServer_StoreDown(t *testing.T) {
	ts := MustOpenServer(t)
	s := ts.MustCreateSession(t, "alice", "en")

	resp := ts.Do(t, Request{Method: "GET", Path: "/readyz"})
	if resp.Status != 200 {
		t.Fatalf("readyz before close: %d %s", resp.Status, resp.Body)
	}

	if err := ts.DB.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("ReadyzUnavailable", func(t *testing.T) {
		MustError(t, ts.Do(t, Request{Method: "GET", Path: "/readyz"}), 503, pentecost.EUNAVAILABLE)
	})
	t.Run("ErrServiceUnavailable", func(t *testing.T) {
		e := MustError(t, ts.Do(t, Request{Method: "GET", Path: "/sessions/" + s.ID}), 503, pentecost.EUNAVAILABLE)
		if strings.Contains(strings.ToLower(e.Message), "sql") {
			t.Fatalf("message leaks internals: %q", e.Message)
		}
	})
	t.Run("HealthzStillOK", func(t *testing.T) {
		if resp := ts.Do(t, Request{Method: "GET", Path: "/healthz"}); resp.Status != 200 {
			t.Fatalf("healthz: %d", resp.Status)
		}
	})
}

func TestServer_Metrics(t *testing.T) {
	ts := MustOpenServer(t)
	ctx := context.Background()
	a := ts.MustCreateSession(t, "alice", "en")
	ts.MustCreateSession(t, "alice", "en")
	b := ts.MustCreateSession(t, "bob", "en")
	paused := pentecost.SessionPaused
	if _, err := ts.Client(t, "bob").UpdateSession(ctx, b.ID, pentecost.SessionUpdate{Status: &paused}); err != nil {
		t.Fatal(err)
	}
	if err := ts.Client(t, "alice").EndSession(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	ts.Do(t, Request{Method: "GET", Path: "/sessions/silver-otter-123"})

	resp := ts.Do(t, Request{Method: "GET", Path: "/metrics"})
	if resp.Status != 200 {
		t.Fatalf("status %d", resp.Status)
	}
	body := string(resp.Body)
	for _, want := range []string{
		`pentecost_http_request_duration_seconds_count{method="POST",route="/sessions",status="2xx"} 3`,
		`pentecost_http_request_duration_seconds_count{method="GET",route="/sessions/{id}",status="4xx"} 1`,
		`pentecost_session_create_duration_seconds_count 3`,
		`pentecost_errors_total{code="SESSION_NOT_FOUND"} 1`,
		"pentecost_sessions_active 2", // one active, one paused; the ended one not
		"go_goroutines",
		"process_",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestServer_Handle(t *testing.T) {
	ts := MustOpenServer(t, func(s *phttp.Server) {
		s.Handle("GET /extra/{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Mounted routes get no body limit and know the correlation ID.
			io.WriteString(w, phttp.CorrelationID(r.Context()))
		}))
		s.Handle("GET /boom", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panic("something broke: secret-detail")
		}))
	})

	t.Run("OK", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "GET", Path: "/extra/x", Header: map[string]string{"X-Correlation-ID": "c-1"}})
		if resp.Status != 200 || string(resp.Body) != "c-1" {
			t.Fatalf("status %d body %q", resp.Status, resp.Body)
		}
	})

	t.Run("ErrInternalOnPanic", func(t *testing.T) {
		e := MustError(t, ts.Do(t, Request{Method: "GET", Path: "/boom"}), 500, pentecost.EINTERNAL)
		if e.Message != "Internal error." {
			t.Fatalf("message %q", e.Message)
		}
		logs := ts.Logs.String()
		if !strings.Contains(logs, e.CorrelationID) || !strings.Contains(logs, "secret-detail") {
			t.Fatalf("panic not logged with correlation id %s", e.CorrelationID)
		}
		// The server goes on serving.
		if resp := ts.Do(t, Request{Method: "GET", Path: "/healthz"}); resp.Status != 200 {
			t.Fatalf("healthz after panic: %d", resp.Status)
		}
	})
}

func TestServer_Logs(t *testing.T) {
	ts := MustOpenServer(t)
	ctx := context.Background()
	if _, err := ts.Accounts.Add(ctx, "alice", testPassword); err != nil {
		t.Fatal(err)
	}
	token, err := ts.Client(t, "").Login(ctx, "alice", testPassword)
	if err != nil {
		t.Fatal(err)
	}
	ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: `{"username":"alice","password":"not-` + testPassword + `"}`})
	c := ts.Client(t, "")
	c.Token = token
	s := &pentecost.Session{SourceLanguage: "en"}
	if err := c.CreateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	ts.Do(t, Request{Method: "GET", Path: "/sessions", Token: token + "x", // a refused token
		Header: map[string]string{"X-Correlation-ID": "refused-check"}})
	// The ID as a person might type it.
	typed := url.PathEscape(" " + strings.ToUpper(strings.ReplaceAll(s.ID, "-", " ")) + " ")
	ts.Do(t, Request{Method: "GET", Path: "/sessions/" + typed, Header: map[string]string{"X-Correlation-ID": "log-check"}})
	ts.Do(t, Request{Method: "GET", Path: "/sessions/not%20an%20id", Header: map[string]string{"X-Correlation-ID": "bad-id-check"}})

	logs := ts.Logs.String()
	for _, secret := range []string{token, token + "x", testPassword, "127.0.0.1"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q", secret)
		}
	}

	// lines returns the log records carrying a correlation ID.
	lines := func(correlationID string) []map[string]any {
		var recs []map[string]any
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, `"`+correlationID+`"`) {
				var rec map[string]any
				mustUnmarshal(t, []byte(line), &rec)
				recs = append(recs, rec)
			}
		}
		if len(recs) == 0 {
			t.Fatalf("no log line for %s:\n%s", correlationID, logs)
		}
		return recs
	}

	// The access log line of the GET names route, status, the session as
	// the store knows it, and the client's network, not its address.
	for _, rec := range lines("log-check") {
		if rec["route"] != "/sessions/{id}" || rec["status"] != 200.0 || rec["method"] != "GET" ||
			rec["session_id"] != s.ID || rec["client_net"] != "127.0.0.0/24" || rec["duration_ms"] == nil {
			t.Fatalf("access log = %v", rec)
		}
	}
	// Text that is no session ID is not logged as one.
	for _, rec := range lines("bad-id-check") {
		if id, ok := rec["session_id"]; ok {
			t.Fatalf("session_id = %q logged for a malformed ID", id)
		}
	}
	// The verifier's refusal carries the request's correlation ID.
	var refused bool
	for _, rec := range lines("refused-check") {
		if rec["msg"] == "Token refused." && rec["correlation_id"] == "refused-check" && rec["reason"] != "" {
			refused = true
		}
	}
	if !refused {
		t.Fatalf("no Token refused line with the correlation ID:\n%s", logs)
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, tt := range []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"DirectNoHeader", "203.0.113.7:5000", nil, "203.0.113.7"},
		{"UntrustedPeerHeaderIgnored", "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"TrustedPeer", "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"SpoofedLeftIgnored", "10.1.2.3:5000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"ChainOfProxies", "10.1.2.3:5000", []string{"198.51.100.1, 10.9.9.9", "10.8.8.8"}, "198.51.100.1"},
		{"AllTrusted", "10.1.2.3:5000", []string{"10.4.4.4, 10.5.5.5"}, "10.4.4.4"},
		{"Garbage", "10.1.2.3:5000", []string{"198.51.100.1, nonsense"}, "10.1.2.3"},
		{"TrustedNoHeader", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"IPv6", "[fd00::1]:5000", []string{"2001:db8::5"}, "2001:db8::5"},
		{"MappedIPv4Peer", "[::ffff:10.1.2.3]:5000", []string{"198.51.100.1"}, "198.51.100.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := phttp.ClientIP(r, trusted); got.String() != tt.want {
				t.Fatalf("ClientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestServer_TrustedProxies checks through the login rate limit that the
// server keys clients by forwarded address only behind a trusted proxy.
func TestServer_TrustedProxies(t *testing.T) {
	login := func(ts *TestServer, xff string) *Response {
		return ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: `{"username":"x","password":"wrong password"}`,
			Header: map[string]string{"X-Forwarded-For": xff}})
	}
	exhaust := func(ts *TestServer, xff string) {
		for i := 0; i < 10; i++ {
			MustError(t, login(ts, xff), 401, pentecost.EAUTHCREDENTIALS)
		}
		MustError(t, login(ts, xff), 429, pentecost.ERATELIMIT)
	}

	t.Run("Trusted", func(t *testing.T) {
		ts := MustOpenServer(t, func(s *phttp.Server) {
			s.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			// One account from several clients: only the limit per IP is
			// looked at here (the one per account: securitytest).
			s.Limits.LoginAttemptsPerAccount = phttp.LoginBackoff{}
		})
		exhaust(ts, "198.51.100.1")
		// Another forwarded client has its own budget.
		MustError(t, login(ts, "198.51.100.2"), 401, pentecost.EAUTHCREDENTIALS)

		// IPv6 clients are counted by /64: a fresh address in the same
		// /64 does not buy a fresh budget, another /64 does.
		exhaust(ts, "2001:db8:0:1::1")
		MustError(t, login(ts, "2001:db8:0:1::2"), 429, pentecost.ERATELIMIT)
		MustError(t, login(ts, "2001:db8:0:2::1"), 401, pentecost.EAUTHCREDENTIALS)
	})

	t.Run("Untrusted", func(t *testing.T) {
		ts := MustOpenServer(t)
		exhaust(ts, "198.51.100.1")
		// The header is the client's own claim: changing it changes nothing.
		MustError(t, login(ts, "198.51.100.2"), 429, pentecost.ERATELIMIT)
	})
}

func TestServer_TLS(t *testing.T) {
	certFile, keyFile, pool := writeSelfSignedCert(t)
	ts := MustOpenServer(t, func(s *phttp.Server) { s.TLSCertFile, s.TLSKeyFile = certFile, keyFile })
	if !strings.HasPrefix(ts.URL(), "https://127.0.0.1:") || ts.Port() == 0 {
		t.Fatalf("URL = %q, port %d", ts.URL(), ts.Port())
	}

	t.Run("OK", func(t *testing.T) {
		c := ts.Client(t, "")
		c.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		langs, err := c.Languages(context.Background())
		if err != nil || len(langs) == 0 {
			t.Fatalf("languages over TLS: %d, %v", len(langs), err)
		}
	})

	t.Run("ErrTLS11", func(t *testing.T) {
		conn, err := tls.Dial("tcp", ts.URL()[len("https://"):], &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10})
		if err == nil {
			conn.Close()
			t.Fatal("TLS 1.1 handshake succeeded")
		}
		if !strings.Contains(err.Error(), "protocol version") {
			t.Fatalf("handshake error %v, want the server to refuse the version", err)
		}
		// net/http logs the failed handshake; the address must be truncated.
		waitFor(t, func() bool { return strings.Contains(ts.Logs.String(), "handshake error") })
		if logs := ts.Logs.String(); strings.Contains(logs, "127.0.0.1") || !strings.Contains(logs, "127.0.0.0/24") {
			t.Fatalf("handshake log not redacted:\n%s", logs)
		}
	})

	t.Run("OK/TLS12", func(t *testing.T) {
		conn, err := tls.Dial("tcp", ts.URL()[len("https://"):], &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if v := conn.ConnectionState().Version; v != tls.VersionTLS12 {
			t.Fatalf("version %x", v)
		}
	})

	t.Run("ErrBadCertFile", func(t *testing.T) {
		s := phttp.NewServer()
		s.Addr = "127.0.0.1:0"
		s.Sessions, s.Verifier = ts.Sessions, ts.Verifier
		s.TLSCertFile, s.TLSKeyFile = filepath.Join(t.TempDir(), "missing.pem"), keyFile
		if err := s.Open(); err == nil {
			s.Close()
			t.Fatal("Open with a missing certificate succeeded")
		}
	})
}

func TestServer_Open(t *testing.T) {
	ts := MustOpenServer(t)

	t.Run("ErrPortInUse", func(t *testing.T) {
		s := phttp.NewServer()
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ts.Port()))
		s.Sessions, s.Verifier = ts.Sessions, ts.Verifier
		if err := s.Open(); err == nil {
			s.Close()
			t.Fatal("Open on a used port succeeded")
		}
	})

	t.Run("ErrNoSessions", func(t *testing.T) {
		s := phttp.NewServer()
		s.Addr = "127.0.0.1:0"
		s.Verifier = ts.Verifier
		if err := s.Open(); err == nil {
			s.Close()
			t.Fatal("Open without Sessions succeeded")
		}
	})

	t.Run("Shutdown", func(t *testing.T) {
		s := phttp.NewServer()
		s.Addr = "127.0.0.1:0"
		s.Sessions, s.Verifier = ts.Sessions, ts.Verifier
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
		url := s.URL()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := http.Get(url + "/healthz"); err == nil {
			t.Fatal("server still answers after Shutdown")
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
	})
}

func TestStatusCode(t *testing.T) {
	for code, want := range map[string]int{
		pentecost.EINVALIDSESSIONID:   400,
		"VALIDATION_SOMETHING_NEW":    400,
		pentecost.EAUTHREQUIRED:       401,
		pentecost.EAUTHCREDENTIALS:    401,
		pentecost.EFORBIDDEN:          403,
		pentecost.EUSERNOTFOUND:       404,
		pentecost.EMETHODNOTALLOWED:   405,
		pentecost.ECONFLICT:           409,
		pentecost.ESESSIONENDED:       409,
		pentecost.EPAYLOADTOOLARGE:    413,
		pentecost.ERATELIMIT:          429,
		pentecost.ESESSIONFULL:        503,
		pentecost.ESESSIONIDEXHAUSTED: 503,
		pentecost.EAUTHUNAVAILABLE:    503,
		pentecost.EINTERNAL:           500,
		"SOMETHING_ELSE":              500,
	} {
		if got := phttp.StatusCode(code); got != want {
			t.Errorf("StatusCode(%s) = %d, want %d", code, got, want)
		}
	}
}

// writeSelfSignedCert writes a certificate for 127.0.0.1 and its key to
// files and returns them with a pool trusting the certificate.
func writeSelfSignedCert(tb testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pentecost test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met before the deadline")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestServer_TLSAddr serves the same routes as plain HTTP on Addr and as
// HTTPS on TLSAddr, and redirects plain HTTP sent to either TLS port.
func TestServer_TLSAddr(t *testing.T) {
	certFile, keyFile, pool := writeSelfSignedCert(t)
	ts := MustOpenServer(t, func(s *phttp.Server) {
		s.TLSCertFile, s.TLSKeyFile, s.TLSAddr = certFile, keyFile, "127.0.0.1:0"
	})
	plain, tlsAddr := ts.Addrs()
	if plain == nil || tlsAddr == nil || !strings.HasPrefix(ts.URL(), "http://") || !strings.HasPrefix(ts.TLSURL(), "https://127.0.0.1:") {
		t.Fatalf("addrs %v %v, URLs %s %s", plain, tlsAddr, ts.URL(), ts.TLSURL())
	}
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, u := range []string{ts.URL() + "/languages", ts.TLSURL() + "/languages"} {
		resp, err := tlsClient.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", u, resp.StatusCode)
		}
	}

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	legacy := MustOpenServer(t, func(s *phttp.Server) { s.TLSCertFile, s.TLSKeyFile = certFile, keyFile })
	for _, base := range []string{ts.TLSURL(), legacy.URL()} {
		resp, err := noFollow.Get(strings.Replace(base, "https://", "http://", 1) + "/languages?x=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := base + "/languages?x=1"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
			t.Fatalf("%d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	if strings.Contains(ts.Logs.String(), `"level":"WARN"`) && strings.Contains(ts.Logs.String(), "plain HTTP") {
		t.Fatalf("redirects logged as warnings:\n%s", ts.Logs)
	}
}
