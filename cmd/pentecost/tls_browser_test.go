package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pentecost/pentecost/certs"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// TestBrowser_TLSSelfSigned runs web/e2e/tls.mjs against the whole program
// with --tls-self-signed: Chromium given the certificate's SPKI hash loads
// https://127.0.0.1:PORT/speak as a secure context and opens a WSS
// connection; Chromium without it refuses the certificate.
func TestBrowser_TLSSelfSigned(t *testing.T) {
	e2e, err := filepath.Abs(filepath.Join("..", "..", "web", "e2e"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s not found: run ./scripts/test, which installs Debian's chromium package", chromiumPath)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node not found: install Node.js, then run ./scripts/test")
	}
	if _, err := os.Stat(filepath.Join(e2e, "node_modules", "playwright-core")); err != nil {
		t.Fatal("web/e2e/node_modules is missing: run ./scripts/test (or `npm ci` in web/e2e)")
	}

	dir := t.TempDir()
	m, _ := MustRunMain(t, dir, map[string]string{"PENTECOST_TLS_SELF_SIGNED": "true", "PENTECOST_TLS_ADDR": "127.0.0.1:0"})
	_, tlsAddr := m.Listening()
	token := mustToken(t, dir, "admin")
	status, body := do(t, "POST", m.HTTPServer.URL()+"/sessions", token, `{"sourceLanguage":"en"}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, body)
	}

	shots := os.Getenv("PENTECOST_E2E_SCREENSHOTS")
	if shots == "" {
		shots = filepath.Join(e2e, "screenshots")
	}
	const timeout = 3 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "tls.mjs")
	cmd.Dir = e2e
	cmd.Env = append(os.Environ(),
		"PENTECOST_TLS_URL=https://127.0.0.1:"+strconv.Itoa(tlsAddr.Port),
		"PENTECOST_SPKI="+certs.SPKIHash(m.Local.Leaf()),
		"PENTECOST_SESSION="+body["sessionId"].(string),
		"PENTECOST_E2E_SCREENSHOTS="+shots,
		"PENTECOST_E2E_TIMEOUT_MS="+strconv.FormatInt((timeout-20*time.Second).Milliseconds(), 10),
		"CHROMIUM="+chromiumPath,
	)
	// On timeout node gets SIGINT first, so that it closes the browsers.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("tls.mjs output:\n%s", out.String())
	if ctx.Err() != nil {
		t.Fatalf("tls.mjs did not finish within %s", timeout)
	}
	if err != nil {
		t.Fatalf("tls.mjs failed: %v", err)
	}
}
