package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pentecost/pentecost/certs"
)

// TestServe_TLSSelfSigned runs the whole program with --tls-self-signed:
// listeners' plain HTTP on --addr, the speaker's HTTPS and WSS on
// --tls-addr with a certificate from the data dir's CA, /ca.crt on both,
// plain HTTP to the TLS port redirected, and the same CA after a restart.
func TestServe_TLSSelfSigned(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"PENTECOST_TLS_SELF_SIGNED": "true", "PENTECOST_TLS_ADDR": "127.0.0.1:0"}
	m, stdout := MustRunMain(t, dir, env)
	plain, tlsAddr := m.Listening()
	if plain == nil || tlsAddr == nil || plain.Port == tlsAddr.Port {
		t.Fatalf("listening on %v and %v", plain, tlsAddr)
	}
	plainURL := m.HTTPServer.URL()
	tlsURL := "https://localhost:" + strconv.Itoa(tlsAddr.Port)
	caPath := filepath.Join(dir, "tls", "ca.pem")
	if out := stdout.String(); !strings.Contains(out, "https://127.0.0.1:"+strconv.Itoa(tlsAddr.Port)+"/speak") || !strings.Contains(out, caPath) || !strings.Contains(out, "/ca.crt") ||
		!strings.Contains(out, caFingerprint(m.Local.CA())) {
		t.Fatalf("start-up text lacks the HTTPS URL or the CA:\n%s", out)
	}

	// A client that trusts only the CA served at /ca.crt on the plain port.
	resp, err := http.Get(plainURL + "/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ca, err := x509.ParseCertificate(der)
	if err != nil || resp.Header.Get("Content-Type") != "application/x-x509-ca-cert" {
		t.Fatalf("/ca.crt: %v %s", err, resp.Header.Get("Content-Type"))
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	for _, u := range []string{plainURL + "/healthz", tlsURL + "/healthz", "https://127.0.0.1:" + strconv.Itoa(tlsAddr.Port) + "/speak", tlsURL + "/ca.crt"} {
		resp, err := tlsClient.Get(u)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", u, resp.StatusCode)
		}
	}

	t.Run("PlainHTTPToTLSPort", func(t *testing.T) {
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Get("http://localhost:" + strconv.Itoa(tlsAddr.Port) + "/speak?lang=es")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := tlsURL + "/speak?lang=es"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
			t.Fatalf("%d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
		}
		// Followed, it lands on the page over HTTPS.
		resp, err = tlsClient.Get("http://localhost:" + strconv.Itoa(tlsAddr.Port) + "/speak")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.TLS == nil {
			t.Fatalf("%d, TLS %v", resp.StatusCode, resp.TLS != nil)
		}
	})

	t.Run("WSS", func(t *testing.T) {
		token := mustToken(t, dir, "admin")
		status, body := do(t, "POST", plainURL+"/sessions", token, `{"sourceLanguage":"en"}`)
		if status != 201 {
			t.Fatalf("create: %d %v", status, body)
		}
		id := body["sessionId"].(string)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wsURL := "wss://localhost:" + strconv.Itoa(tlsAddr.Port) + "/ws?sessionId=" + id + "&targetLanguage=en"
		c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: tlsClient})
		if err != nil {
			t.Fatalf("WSS with the CA: %v", err)
		}
		defer c.CloseNow()
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("WSS read: %v", err)
			}
			var msg map[string]any
			json.Unmarshal(data, &msg)
			if msg["type"] == "sessionJoined" {
				break
			}
		}
		// Without the CA, the certificate is refused.
		if _, _, err := websocket.Dial(ctx, wsURL, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("WSS without the CA: %v", err)
		}
	})

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2, _ := MustRunMain(t, dir, env)
	if !m2.Local.CA().Equal(ca) {
		t.Fatal("restart made a new CA")
	}
	if certs.SPKIHash(m2.Local.Leaf()) != certs.SPKIHash(m.Local.Leaf()) {
		t.Fatal("restart changed the certificate's key")
	}
}

// TestServe_TLSAuto starts the whole program with --tls-auto (the ACME CA
// is never reached: no certificate is requested) and checks the ports, the
// :80 redirect to the TLS port and the cache directory.
func TestServe_TLSAuto(t *testing.T) {
	dir := t.TempDir()
	m, stdout := MustRunMain(t, dir, map[string]string{"PENTECOST_TLS_AUTO": "live.example.org", "PENTECOST_TLS_ADDR": "127.0.0.1:0",
		"PENTECOST_ACME_DIRECTORY": "https://127.0.0.1:1/directory", "PENTECOST_ACME_EMAIL": "ops@example.org"},
		func(m *Main) { m.ACMEHTTPAddr = "127.0.0.1:0" })
	_, tlsAddr := m.Listening()
	if m.ACME == nil || m.ACME.HTTPListenAddr() == nil || tlsAddr == nil {
		t.Fatal("ACME not set up")
	}
	if !strings.Contains(stdout.String(), "https://live.example.org:"+strconv.Itoa(tlsAddr.Port)+"/speak") {
		t.Fatalf("stdout:\n%s", stdout)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+m.ACME.HTTPListenAddr().String()+"/listen/abc", nil)
	req.Host = "live.example.org"
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://live.example.org:" + strconv.Itoa(tlsAddr.Port) + "/listen/abc"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
		t.Fatalf("%d %q, want %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	// A TLS client asking for another name gets no certificate.
	conn, err := tls.Dial("tcp", tlsAddr.String(), &tls.Config{ServerName: "other.example.org", InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Fatal("handshake for a name not listed succeeded")
	}
}
