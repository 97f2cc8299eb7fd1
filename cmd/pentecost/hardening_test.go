package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// Whole-program holes of issue 13, item 8: an OIDC issuer whose keys
// cannot be fetched at start, an OIDC issuer that clashes with the
// embedded one, the first admin password on stdout, and /metrics on the
// API's port.

// hardeningLogs replaces Main's logger with one writing JSON lines to the
// returned buffer.
func hardeningLogs(logs *syncBuffer) func(*Main) {
	return func(m *Main) {
		m.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// hardeningLogLine returns the first log line with the given message
// prefix, or nil.
func hardeningLogLine(t *testing.T, logs string, prefix string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			continue // not every line is JSON (net/http's own)
		}
		if msg, _ := rec["msg"].(string); strings.HasPrefix(msg, prefix) {
			return rec
		}
	}
	return nil
}

// TestServe_OIDCKeysDownAtStart: an OIDC issuer whose JWKS could not be
// fetched at start was silent (its issuer had no logger), and its
// speakers got 503s nobody could explain. The failure is logged as a
// warning naming the issuer, the server starts, and once the JWKS answers
// the issuer's tokens are taken.
func TestServe_OIDCKeysDownAtStart(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(key.Public(), jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: "k1", ALG: jwkset.AlgES256, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	if err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(set)
	}))
	defer jwks.Close()

	logs := &syncBuffer{}
	const iss = "https://id.example.test"
	m, _ := MustRunMain(t, t.TempDir(), map[string]string{
		"OIDC_ISSUERS": "name=corp,issuer=" + iss + ",jwks=" + jwks.URL + ",client_id=app,alg=ES256",
	}, hardeningLogs(logs))

	warn := hardeningLogLine(t, logs.String(), "No keys fetched")
	if warn == nil || warn["level"] != "WARN" || warn["issuer"] != "corp" || warn["jwks_url"] != jwks.URL ||
		!strings.Contains(warn["error"].(string), "503") {
		t.Fatalf("no warning naming the issuer and the failure; logs:\n%s", logs)
	}

	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": iss, "sub": "ada", "aud": "app", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "k1"
	token, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	// The issuer fetches again when a token comes (at most every 10 s:
	// this is the first time since the start).
	up.Store(true)
	if status, body := do(t, "GET", m.HTTPServer.URL()+"/sessions", token, ""); status != http.StatusOK {
		t.Fatalf("once the JWKS is back: %d %v", status, body)
	}
	if hardeningLogLine(t, logs.String(), "Keys fetched") == nil {
		t.Errorf("recovery not logged; logs:\n%s", logs)
	}
}

// TestServe_OIDCIssuerClash: an OIDC issuer with the embedded issuer's iss
// was silently ignored (tokens are routed by iss, and the embedded issuer
// came first), so its speakers were refused with no word why. The server
// refuses to start and says which setting is wrong.
func TestServe_OIDCIssuerClash(t *testing.T) {
	for name, tc := range map[string]struct{ spec, want string }{
		"SameIss":  {"name=corp,issuer=pentecost,jwks=http://127.0.0.1:1/keys,client_id=app", `issuer "pentecost" is the iss of Pentecost's own tokens`},
		"SameName": {"name=Embedded,issuer=https://id.example.test,jwks=http://127.0.0.1:1/keys,client_id=app", "reserved"},
	} {
		t.Run(name, func(t *testing.T) {
			e := map[string]string{"PENTECOST_ADDR": "127.0.0.1:0", "PENTECOST_DATA_DIR": t.TempDir(), "OIDC_ISSUERS": tc.spec}
			cfg, err := LoadConfig(nil, func(k string) string { return e[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			m := NewMain(cfg, io.Discard, io.Discard)
			err = m.Run(context.Background())
			m.Close()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestServe_AdminPasswordOnStderr: the first admin password went to
// stdout, which service managers and scripts collect. It goes to stderr,
// beside the other messages for the person starting the server, and only
// there.
func TestServe_AdminPasswordOnStderr(t *testing.T) {
	var stderr syncBuffer
	m, stdout := MustRunMain(t, t.TempDir(), nil, func(m *Main) { m.Stderr = &stderr })
	match := adminPassword.FindStringSubmatch(stderr.String())
	if match == nil {
		t.Fatalf("no admin password on stderr:\n%s", stderr.String())
	}
	if strings.Contains(stdout.String(), match[1]) || strings.Contains(stdout.String(), "password") {
		t.Fatalf("password on stdout:\n%s", stdout)
	}
	if status, body := do(t, "POST", m.HTTPServer.URL()+"/auth/login", "", `{"username":"admin","password":"`+match[1]+`"}`); status != http.StatusOK {
		t.Fatalf("the printed password does not sign in: %d %v", status, body)
	}
}

// TestServe_MetricsAddr: with --metrics-addr, /metrics has a listener of
// its own and the API's port answers 404; without it, /metrics stays on
// the API's port for a scraper on this machine.
func TestServe_MetricsAddr(t *testing.T) {
	get := func(t *testing.T, url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const metric = "pentecost_sessions_active" // there before any request

	t.Run("OwnListener", func(t *testing.T) {
		logs := &syncBuffer{}
		m, _ := MustRunMain(t, t.TempDir(), map[string]string{"PENTECOST_METRICS_ADDR": "127.0.0.1:0"}, hardeningLogs(logs))
		url := m.HTTPServer.MetricsURL()
		if status, body := get(t, url); status != http.StatusOK || !strings.Contains(body, metric) {
			t.Fatalf("%s: %d %.200s", url, status, body)
		}
		status, body := get(t, m.HTTPServer.URL()+"/metrics")
		if status != http.StatusNotFound || strings.Contains(body, metric) || !strings.Contains(body, `"NOT_FOUND"`) {
			t.Fatalf("API port /metrics: %d %.200s", status, body)
		}
		if rec := hardeningLogLine(t, logs.String(), "metrics served"); rec == nil || rec["url"] != url {
			t.Errorf("metrics URL not logged; logs:\n%s", logs)
		}
	})

	t.Run("Default", func(t *testing.T) {
		m, _ := MustRunMain(t, t.TempDir(), nil)
		if m.HTTPServer.MetricsURL() != "" {
			t.Fatalf("MetricsURL = %q without --metrics-addr", m.HTTPServer.MetricsURL())
		}
		if status, body := get(t, m.HTTPServer.URL()+"/metrics"); status != http.StatusOK || !strings.Contains(body, metric) {
			t.Fatalf("loopback scrape: %d %.200s", status, body)
		}
	})

	t.Run("SameAsAddr", func(t *testing.T) {
		e := map[string]string{"PENTECOST_ADDR": ":8080", "PENTECOST_METRICS_ADDR": ":8080"}
		var errOut bytes.Buffer
		if _, err := LoadConfig(nil, func(k string) string { return e[k] }, &errOut); err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
			t.Fatalf("LoadConfig = %v", err)
		}
	})
}

// TestServe_PprofPrivateOnly: profiles show what the server is doing and
// cost it CPU to make; with --pprof they are served to loopback and
// private clients only, as /metrics is on the API port.
func TestServe_PprofPrivateOnly(t *testing.T) {
	m, _ := MustRunMain(t, t.TempDir(), map[string]string{"PENTECOST_PPROF": "true", "TRUSTED_PROXIES": "127.0.0.1"})
	get := func(forwardedFor string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", m.HTTPServer.URL()+"/debug/pprof/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if forwardedFor != "" {
			req.Header.Set("X-Forwarded-For", forwardedFor)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get(""); status != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("pprof from this machine: %d %.200s", status, body)
	}
	if status, body := get("10.1.2.3"); status != http.StatusOK {
		t.Fatalf("pprof from a private address: %d %.200s", status, body)
	}
	if status, body := get("203.0.113.9"); status != http.StatusNotFound || strings.Contains(body, "goroutine") {
		t.Fatalf("pprof from the internet: %d %.200s", status, body)
	}
}
