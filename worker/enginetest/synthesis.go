package enginetest

import (
	"context"
	"errors"
	"testing"

	"github.com/pentecost/pentecost/worker/engine"
)

// synthesisText is what RunStreamingSynthesizer speaks: a sentence long
// enough for a streaming engine to hand out several chunks.
const synthesisText = "Good morning, and welcome to everyone who joins us today."

// RunStreamingSynthesizer runs the cases every engine.StreamingSynthesizer
// must pass, speaking in lang: it emits non-empty audio as one call would
// return it (the same length within 10 % and 100 ms, since neural voices
// vary), an error from emit stops it and comes back, and a cancelled
// context stops it with no emit after the cancellation.
func RunStreamingSynthesizer(t *testing.T, s engine.StreamingSynthesizer, lang string) {
	t.Helper()
	t.Run("OK", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), resultsWait)
		defer cancel()
		whole, err := s.Synthesize(ctx, synthesisText, lang)
		if err != nil {
			t.Fatalf("Synthesize: %v", err)
		}
		var streamed []int16
		chunks := 0
		err = s.SynthesizeStream(ctx, synthesisText, lang, engine.Prosody{}, func(pcm []int16) error {
			if len(pcm) == 0 {
				t.Error("empty chunk emitted")
			}
			chunks++
			streamed = append(streamed, pcm...)
			return nil
		})
		if err != nil {
			t.Fatalf("SynthesizeStream: %v", err)
		}
		if len(streamed) == 0 {
			t.Fatal("no audio emitted")
		}
		diff := len(streamed) - len(whole)
		if diff < 0 {
			diff = -diff
		}
		if tol := len(whole)/10 + engine.SampleRate/10; diff > tol {
			t.Fatalf("streamed %d samples, Synthesize %d: more than %d apart", len(streamed), len(whole), tol)
		}
		t.Logf("%d samples in %d chunks", len(streamed), chunks)
	})

	t.Run("Prosody", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), resultsWait)
		defer cancel()
		n := 0
		err := s.SynthesizeStream(ctx, synthesisText, lang, engine.Prosody{Rate: 1.2, Loudness: 3}, func(pcm []int16) error {
			n += len(pcm)
			return nil
		})
		if err != nil || n == 0 {
			t.Fatalf("with prosody: %d samples, err %v", n, err)
		}
	})

	t.Run("EmitErrorStops", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), resultsWait)
		defer cancel()
		stop := errors.New("listener gone")
		calls := 0
		err := s.SynthesizeStream(ctx, synthesisText, lang, engine.Prosody{}, func([]int16) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) {
			t.Fatalf("err = %v, want emit's error", err)
		}
		if calls != 1 {
			t.Fatalf("emit called %d times after failing", calls)
		}
	})

	t.Run("ContextCanceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		after := 0
		canceled := false
		err := s.SynthesizeStream(ctx, synthesisText, lang, engine.Prosody{}, func([]int16) error {
			if canceled {
				after++
			}
			cancel()
			canceled = true
			return nil
		})
		if !canceled {
			t.Fatalf("no audio emitted (err %v)", err)
		}
		if err == nil {
			t.Fatal("nil error after the context was cancelled")
		}
		if after != 0 {
			t.Fatalf("%d emits after the context was cancelled", after)
		}
	})
}
