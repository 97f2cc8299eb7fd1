package worker

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// CheckTimeout bounds the start-up check of one synthesiser.
const CheckTimeout = 30 * time.Second

// checkWords are short words spoken by CheckSynthesizers, one per
// language where it matters; other languages say "ok".
var checkWords = map[string]string{"en": "hello", "es": "hola", "ca": "hola", "gl": "ola", "pt": "olá",
	"fr": "bonjour", "de": "hallo", "it": "ciao"}

// CheckSynthesizers synthesises a short word in every language of
// e.Synthesizers, all at once, and removes the languages whose
// synthesiser fails or returns no audible sound, so that the worker does
// not claim a language it cannot speak (Debian's espeak-ng has no
// Galician voice: "espeak:gl" fails here, and Offer then leaves Galician
// out). It logs each removal at error level and returns the removed
// languages, sorted. Call it once at start, before the engines are
// shared.
func CheckSynthesizers(ctx context.Context, e *Engines, logger *slog.Logger) []string {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	type result struct {
		lang string
		err  error
		rms  float64
	}
	results := make(chan result, len(e.Synthesizers))
	var wg sync.WaitGroup
	for lang, s := range e.Synthesizers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			word := checkWords[lang]
			if word == "" {
				word = "ok"
			}
			cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
			defer cancel()
			pcm, err := s.Synthesize(cctx, word, lang)
			results <- result{lang: lang, err: err, rms: RMS(pcm)}
		}()
	}
	wg.Wait()
	close(results)
	var removed []string
	for r := range results {
		if r.err == nil && r.rms >= checkMinRMS {
			continue
		}
		name := e.Synthesizers[r.lang].Name()
		switch pe := (*ProcessError)(nil); {
		case errors.As(r.err, &pe) && pe.Stderr != "":
			// The input was our own word, so the engine's error output
			// holds no transcript and says why ("The specified espeak-ng
			// voice does not exist.").
			logger.Error("synthesiser cannot speak this language: not offered", logLanguage, r.lang, logEngine, name,
				logError, r.err, "stderr", pe.Stderr)
		case r.err != nil:
			logger.Error("synthesiser cannot speak this language: not offered", logLanguage, r.lang, logEngine, name, logError, r.err)
		default:
			logger.Error("synthesiser returned silence: language not offered", logLanguage, r.lang, logEngine, name, "rms", r.rms)
		}
		delete(e.Synthesizers, r.lang)
		removed = append(removed, r.lang)
	}
	sort.Strings(removed)
	return removed
}

// checkMinRMS is the least RMS (int16 scale) of a word that counts as
// spoken: espeak-ng's "hola" is about 3000; silence or a click is far
// below.
const checkMinRMS = 100
