// Package worker is Pentecost's translation worker: it follows a server's
// live sessions through the worker protocol, cuts each session's source
// audio into utterances, recognises, translates and speaks them with
// pluggable engines, and publishes the audio and captions of every
// language that has listeners.
package worker

import (
	"context"
	"errors"
	"io"
	"slices"
)

// Recognizer turns an utterance of speech into text.
type Recognizer interface {
	// Name identifies the engine in metrics and logs, e.g. "pocketsphinx".
	Name() string
	// Recognize returns the transcript of pcm (16 kHz mono) spoken in lang;
	// "" when nothing was recognised.
	Recognize(ctx context.Context, pcm []int16, lang string) (string, error)
}

// Translator translates text from one language to another.
type Translator interface {
	// Name identifies the engine in metrics and logs, e.g. "apertium".
	Name() string
	// Translate returns text, in language from, translated into to.
	Translate(ctx context.Context, text, from, to string) (string, error)
}

// Synthesizer turns text into speech.
type Synthesizer interface {
	// Name identifies the engine in metrics and logs, e.g. "espeak-ng".
	Name() string
	// Synthesize returns text spoken in lang as 16 kHz mono samples.
	Synthesize(ctx context.Context, text, lang string) ([]int16, error)
}

// Pair is a translation direction, e.g. {"en", "es"}.
type Pair struct{ From, To string }

// String returns the pair as "en-es".
func (p Pair) String() string { return p.From + "-" + p.To }

// Engines are the engines a worker uses: recognisers by source language,
// translators by pair, synthesisers by target language.
type Engines struct {
	Recognizers  map[string]Recognizer
	Translators  map[Pair]Translator
	Synthesizers map[string]Synthesizer
}

// CanProduce reports whether the engines cover speech in from turned into
// speech in to.
func (e *Engines) CanProduce(from, to string) bool {
	return e.Recognizers[from] != nil && e.Translators[Pair{from, to}] != nil && e.Synthesizers[to] != nil
}

// Offer lists every pair the engines cover (CanProduce): target languages
// by source language, sorted, as a worker offers them to the server.
func (e *Engines) Offer() map[string][]string {
	out := map[string][]string{}
	for p := range e.Translators {
		if p.From != p.To && e.CanProduce(p.From, p.To) {
			out[p.From] = append(out[p.From], p.To)
		}
	}
	for _, targets := range out {
		slices.Sort(targets)
	}
	return out
}

// Close releases what the engines hold (generated model files).
func (e *Engines) Close() error {
	seen := map[any]bool{}
	var all []any
	for _, r := range e.Recognizers {
		all = append(all, r)
	}
	for _, t := range e.Translators {
		all = append(all, t)
	}
	for _, s := range e.Synthesizers {
		all = append(all, s)
	}
	var first error
	for _, x := range all {
		if c, ok := x.(io.Closer); ok && !seen[x] {
			seen[x] = true
			if err := c.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// errEmpty reports an engine answer with nothing in it.
var errEmpty = errors.New("engine returned nothing")
