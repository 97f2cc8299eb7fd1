// Package enginetest holds the suites every engine of an interface must
// pass, whatever it talks to: an offline program, a local fake of a cloud
// API, or the real service where it can be reached.
package enginetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker/engine"
)

// TranslatorSentence is the sentence RunTranslator translates; a fake
// engine must answer it with a non-empty translation.
const TranslatorSentence = "Good morning, and welcome to all of you."

// TranslatorPrevious is the context RunTranslator passes to a
// ContextTranslator; the answer must not contain it.
var TranslatorPrevious = []string{"The harbour bell rang seven times before dawn.", "Nobody in the village slept."}

// RunTranslator runs the cases every Translator must pass, translating
// from into to.
func RunTranslator(t *testing.T, tr engine.Translator, from, to string) {
	t.Helper()
	t.Run("OK", func(t *testing.T) {
		if tr.Name() == "" {
			t.Error("Name is empty")
		}
		got, err := tr.Translate(context.Background(), TranslatorSentence, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(got) == "" {
			t.Fatal("empty translation")
		}
	})
	t.Run("ErrCancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		_, err := tr.Translate(ctx, TranslatorSentence, from, to)
		if err == nil {
			t.Fatal("translated with a cancelled context")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want one wrapping context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %v to notice the cancelled context", d)
		}
	})
	t.Run("ErrDeadline", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		_, err := tr.Translate(ctx, TranslatorSentence, from, to)
		var ee *engine.Error
		switch {
		case err == nil:
			t.Fatal("translated past the deadline")
		case errors.As(err, &ee) && ee.Code != engine.ErrTimeout:
			t.Errorf("code %q, want %q", ee.Code, engine.ErrTimeout)
		case !errors.Is(err, context.DeadlineExceeded) && ee == nil:
			t.Errorf("err = %v, want a timeout", err)
		}
	})
	ct, ok := tr.(engine.ContextTranslator)
	if !ok {
		return
	}
	t.Run("ContextNotEchoed", func(t *testing.T) {
		got, err := ct.TranslateContext(context.Background(), TranslatorSentence, from, to, TranslatorPrevious)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(got) == "" {
			t.Fatal("empty translation")
		}
		for _, p := range TranslatorPrevious {
			if strings.Contains(got, p) || strings.Contains(got, strings.TrimSuffix(p, ".")) {
				t.Fatalf("the previous sentence %q came back in the answer %q", p, got)
			}
		}
		if strings.Count(got, ".") > strings.Count(TranslatorSentence, ".")+1 {
			t.Errorf("answer %q has more sentences than the text: the context was translated too", got)
		}
	})
}
