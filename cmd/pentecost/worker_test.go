package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/pentecost/pentecost/worker"
)

// syncBuffer is a bytes.Buffer safe for a command writing while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWorkerCommand runs `pentecost worker` next to `pentecost serve` on
// the same data dir, as the docs say: it finds the credential there, serves
// its metrics, and claims Spanish as soon as a Spanish listener joins.
func TestWorkerCommand(t *testing.T) {
	dir := t.TempDir()
	m, _ := MustRunMain(t, dir, map[string]string{"SHUTDOWN_TIMEOUT_SECONDS": "0.5"})
	url := m.HTTPServer.URL()
	token := mustToken(t, dir, "admin")
	status, body := do(t, "POST", url+"/sessions", token, `{"sourceLanguage":"en"}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, body)
	}
	id := body["sessionId"].(string)

	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"worker", "--server", url, "--data-dir", dir, "--metrics-addr", "127.0.0.1:0"},
			noEnv, nil, &stdout, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	metricsURL := regexp.MustCompile(`http://\S+/metrics`)
	waitFor(t, func() bool {
		select {
		case err := <-done:
			var me *worker.MissingError
			if errors.As(err, &me) {
				t.Fatalf("%v: run ./scripts/test", err)
			}
			t.Fatalf("worker stopped: %v", err)
		default:
		}
		return metricsURL.MatchString(stdout.String())
	})

	listener := dialWS(t, url, "sessionId="+id+"&targetLanguage=es")
	listener.next("sessionJoined")
	listener.next("translationAvailable")

	// The gauge follows the claim's confirmation, which may come a moment
	// after the listener heard of it.
	waitFor(t, func() bool {
		resp, err := http.Get(metricsURL.FindString(stdout.String()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), buildInfoLine()) {
			t.Fatalf("worker metrics lack %q", buildInfoLine())
		}
		return strings.Contains(string(b), "pentecost_worker_languages 1")
	})

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("worker stopped with %v, want nil", err)
	}
	done <- nil // for the cleanup
	listener.next("translationUnavailable")
}

func TestLoadWorkerConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, workerCredentialFile), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("OK", func(t *testing.T) {
		c, err := LoadWorkerConfig([]string{"--data-dir", dir}, noEnv, io.Discard, io.Discard)
		if err != nil || c.Credential != "from-file" || c.Server != "http://localhost:8080" {
			t.Fatalf("%+v %v", c, err)
		}
	})
	t.Run("OKEnvOverFile", func(t *testing.T) {
		c, err := LoadWorkerConfig([]string{"--data-dir", dir}, env(map[string]string{"PENTECOST_WORKER_CREDENTIAL": "from-env",
			"PENTECOST_SERVER": "https://example.test"}), io.Discard, io.Discard)
		if err != nil || c.Credential != "from-env" || c.Server != "https://example.test" {
			t.Fatalf("%+v %v", c, err)
		}
	})
	t.Run("OKFlagOverEnv", func(t *testing.T) {
		c, err := LoadWorkerConfig([]string{"--credential", "from-flag"}, env(map[string]string{"PENTECOST_WORKER_CREDENTIAL": "from-env"}), io.Discard, io.Discard)
		if err != nil || c.Credential != "from-flag" {
			t.Fatalf("%+v %v", c, err)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"ErrNoCredential", []string{"--data-dir", filepath.Join(dir, "nothing")}},
		{"ErrServer", []string{"--credential", "x", "--server", "localhost:8080"}},
		{"ErrLogLevel", []string{"--credential", "x", "--log-level", "loud"}},
		{"ErrArgument", []string{"--credential", "x", "extra"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadWorkerConfig(tc.args, noEnv, io.Discard, io.Discard); err == nil {
				t.Fatal("no error")
			}
		})
	}
	t.Run("ErrEnginesFileIsUsageError", func(t *testing.T) {
		bad := filepath.Join(dir, "engines.conf")
		if err := os.WriteFile(bad, []byte("translate.en-es=apertium:eng-spa\nvoice=loud\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		err := run(context.Background(), []string{"worker", "--credential", "x", "--engines", bad}, noEnv, nil, io.Discard, io.Discard)
		if exitCode(err) != 2 || !strings.Contains(err.Error(), "line 2") {
			t.Fatalf("err = %v (exit %d), want a usage error naming line 2", err, exitCode(err))
		}
	})
}

// TestWorkerCommandTiers runs `pentecost worker` with an engines file
// that gives the premium tier an LLM translation chain: the worker starts
// with both tiers.
func TestWorkerCommandTiers(t *testing.T) {
	dir := t.TempDir()
	m, _ := MustRunMain(t, dir, map[string]string{"SHUTDOWN_TIMEOUT_SECONDS": "0.5"})
	chat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"not in this test"}}`, http.StatusServiceUnavailable)
	}))
	defer chat.Close()
	engines := filepath.Join(dir, "engines.conf")
	conf := "tier.premium.translate.en-es=llm,apertium:eng-spa\ntier.premium.llm.model=qwen2.5:7b-instruct\nllm.url=" + chat.URL + "/v1\n"
	if err := os.WriteFile(engines, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"worker", "--server", m.HTTPServer.URL(), "--data-dir", dir, "--engines", engines, "--log-format", "text"},
			noEnv, nil, io.Discard, &stderr)
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("worker stopped: %v\n%s", err, stderr.String())
		default:
		}
		return strings.Contains(stderr.String(), "worker running")
	})
	if line := stderr.String(); !strings.Contains(line, "tiers=\"[premium standard]\"") {
		t.Fatalf("worker log lacks both tiers:\n%s", line)
	}
}
