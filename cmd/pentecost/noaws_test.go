//go:build noaws

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// TestWorker_NoAWS: a binary built with -tags noaws has none of the AWS SDK,
// and its worker refuses each AWS engine by name, saying why.
func TestWorker_NoAWS(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build information in the test binary")
	}
	for _, d := range bi.Deps {
		if strings.HasPrefix(d.Path, "github.com/aws/") {
			t.Errorf("linked with -tags noaws: %s", d.Path)
		}
	}

	// The offline defaults are switched off, so that only the AWS engine
	// is built.
	const off = "recognize.en=\ntranslate.en-es=\ntranslate.en-ca=\ntranslate.en-gl=\n" +
		"synthesize.en=\nsynthesize.es=\nsynthesize.ca=\nsynthesize.gl=\n"
	dir := t.TempDir()
	for _, tc := range []struct{ engine, key, conf string }{
		{"aws", "translate.en-es", "translate.en-es=aws\n"},
		{"polly", "synthesize.es", "synthesize.es=polly:Lucia\n"},
		{"transcribe", "recognize.en", "recognize.en=transcribe:en-US\ntranscribe.bucket=talks\n"},
		{"transcribe-streaming", "tier.premium.recognize.en", "tier.premium.recognize.en=transcribe-streaming\n"},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			file := filepath.Join(dir, tc.engine+".conf")
			if err := os.WriteFile(file, []byte(off+tc.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			err := run(context.Background(), []string{"worker", "--server", "http://127.0.0.1:1", "--credential", "x", "--engines", file},
				noEnv, nil, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.key+": the "+tc.engine+" engine is not in this binary") ||
				!strings.Contains(err.Error(), "-tags noaws") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
