package worker_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/pentecost/pentecost/worker"
)

// silentSynth answers every synthesis with silence or an error.
type silentSynth struct{ err error }

func (silentSynth) Name() string { return "silent" }
func (s silentSynth) Synthesize(context.Context, string, string) ([]int16, error) {
	return make([]int16, 1600), s.err
}

// TestCheckSynthesizers: a language whose synthesiser cannot speak it is
// no longer offered, with a log line that says why.
func TestCheckSynthesizers(t *testing.T) {
	t.Run("OKDefaultEnginesWithoutGalicianVoice", func(t *testing.T) {
		e, err := worker.DefaultConfig().Engines(context.Background(), func(string) string { return "" })
		requirePackages(t, err)
		t.Cleanup(func() { _ = e.Close() })
		if !slices.Contains(e.Offer()["en"], "gl") {
			t.Fatalf("offer %v before the check: the configuration should claim Galician", e.Offer())
		}
		var log bytes.Buffer
		removed := worker.CheckSynthesizers(context.Background(), e, slog.New(slog.NewTextHandler(&log, nil)))
		// Debian's espeak-ng has no Galician voice; it has the others.
		if !slices.Equal(removed, []string{"gl"}) {
			t.Errorf("removed %v, want [gl]", removed)
		}
		if got := e.Offer()["en"]; !slices.Equal(got, []string{"ca", "es"}) {
			t.Errorf("offer %v, want [ca es]", got)
		}
		if e.CanProduce("en", "gl") {
			t.Error("CanProduce(en, gl) after the check")
		}
		if !strings.Contains(log.String(), "language=gl") || !strings.Contains(log.String(), "voice does not exist") {
			t.Errorf("log %q does not say that the Galician voice is missing", log.String())
		}
		t.Logf("log: %s", log.String())
	})
	t.Run("OKSilenceAndErrorRemoved", func(t *testing.T) {
		good := worker.NewEspeak()
		e := &worker.Engines{Synthesizers: map[string]worker.Synthesizer{
			"es": good, "fr": silentSynth{}, "de": silentSynth{err: errors.New("no voice")}}}
		removed := worker.CheckSynthesizers(context.Background(), e, nil)
		if !slices.Equal(removed, []string{"de", "fr"}) {
			t.Errorf("removed %v, want [de fr]", removed)
		}
		if e.Synthesizers["es"] == nil {
			t.Error("the working Spanish voice was removed")
		}
	})
}
