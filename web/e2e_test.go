package web_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	"github.com/pentecost/pentecost/realtime"
)

// e2eTimeout bounds the browser test; the script itself gives up earlier.
const e2eTimeout = 4 * time.Minute

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// TestBrowser runs the pages in a real browser against a real server: a
// speaker goes live from /speak with a generated WAV as microphone, two
// listeners join (by typing the code, and by the QR link), and the script
// checks that what they receive is what the speaker captured, that pause
// and end reach them, and that a killed socket resumes without a gap.
// Screenshots at phone size go to web/e2e/screenshots (or
// $PENTECOST_E2E_SCREENSHOTS).
func TestBrowser(t *testing.T) {
	requireBrowser(t)
	workerSecret := auth.GeneratePassword()
	srv := startServer(t, nil, func(rt *realtime.Server) {
		// Refreshes every few seconds, so that the test sees several; the
		// connection limit allows for them (every client is 127.0.0.1).
		rt.RefreshAfter = 4 * time.Second
		rt.ConnectionLimit = pentecost.Limit{Events: 200, Per: time.Minute}
		rt.WorkerVerifier = auth.NewWorkerSecrets([]string{"e2e:" + workerSecret})
	})
	runBrowserScript(t, "browser.mjs",
		"PENTECOST_URL="+srv.URL,
		"PENTECOST_USERNAME="+srv.Username,
		"PENTECOST_PASSWORD="+srv.Password,
		"PENTECOST_WORKER_SECRET="+workerSecret,
	)
}

// TestBrowserOpus checks, in Chromium, the decoders a listener page can
// use on the Opus fixture of web/testdata/opus: WebCodecs' AudioDecoder,
// and the WebAssembly decoder vendored in web/static/vendor/opus-decoder,
// served by a real server and loaded under the pages' Content-Security-
// Policy in a page without WebCodecs. Both must follow the input, decode
// the same samples as github.com/pion/opus (decoded here and handed to
// web/e2e/opus.mjs), and keep their length with every 10th packet lost.
func TestBrowserOpus(t *testing.T) {
	requireBrowser(t)
	srv := startServer(t, nil, nil)
	f := loadOpusFixture(t)
	pion := t.TempDir()
	for name, packets := range f.packets {
		for _, rate := range []int{16000, 48000} {
			pcm := pionDecode(t, packets, rate)
			b := make([]byte, 4*len(pcm))
			for i, v := range pcm {
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
			}
			if err := os.WriteFile(filepath.Join(pion, fmt.Sprintf("%s-%d.f32", name, rate)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	fixture, err := filepath.Abs(opusFixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	runBrowserScript(t, "opus.mjs",
		"PENTECOST_URL="+srv.URL,
		"PENTECOST_OPUS_FIXTURE="+fixture,
		"PENTECOST_OPUS_PION="+pion,
	)
}

// requireBrowser fails the test unless Chromium, Node.js and the e2e
// script's npm packages are installed (./scripts/test installs them).
func requireBrowser(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s not found: run ./scripts/test, which installs Debian's chromium package", chromiumPath)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node not found: install Node.js, then run ./scripts/test")
	}
	if _, err := os.Stat(filepath.Join("e2e", "node_modules", "playwright-core")); err != nil {
		t.Fatal("web/e2e/node_modules is missing: run ./scripts/test (or `npm ci` in web/e2e)")
	}
}

// runBrowserScript runs a script of web/e2e with node, with env added to
// the environment, and fails the test if it fails. Screenshots go to
// web/e2e/screenshots (or $PENTECOST_E2E_SCREENSHOTS).
func runBrowserScript(t *testing.T, script string, env ...string) {
	t.Helper()
	shots := os.Getenv("PENTECOST_E2E_SCREENSHOTS")
	if shots == "" {
		var err error
		shots, err = filepath.Abs(filepath.Join("e2e", "screenshots"))
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = "e2e"
	cmd.Env = append(os.Environ(),
		"PENTECOST_E2E_SCREENSHOTS="+shots,
		"PENTECOST_E2E_TIMEOUT_MS="+strconv.FormatInt((e2eTimeout-20*time.Second).Milliseconds(), 10),
		"CHROMIUM="+chromiumPath,
	)
	cmd.Env = append(cmd.Env, env...)
	// On timeout node gets SIGINT first, so that it closes the browser.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s output (%s):\n%s", script, time.Since(start).Round(time.Millisecond), out.String())
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s", script, e2eTimeout)
	}
	if err != nil {
		t.Fatalf("%s failed: %v", script, err)
	}
	t.Logf("screenshots in %s", shots)
}
