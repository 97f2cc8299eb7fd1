// Package worker is Pentecost's translation worker: it follows a server's
// live sessions through the worker protocol, cuts each session's source
// audio into utterances, recognises, translates and speaks them with
// pluggable engines, and publishes the audio and captions of every
// language that has listeners.
package worker

import (
	"errors"
	"io"
	"slices"

	"github.com/pentecost/pentecost/worker/engine"
)

// The engine interfaces live in package engine, so that engines can be
// packages of their own; these names keep the pipeline's code short.
type (
	Recognizer           = engine.Recognizer
	StreamingRecognizer  = engine.StreamingRecognizer
	RecognitionStream    = engine.RecognitionStream
	Hypothesis           = engine.Hypothesis
	Translator           = engine.Translator
	ContextTranslator    = engine.ContextTranslator
	Synthesizer          = engine.Synthesizer
	StreamingSynthesizer = engine.StreamingSynthesizer
	Prosody              = engine.Prosody
)

// Pair is a translation direction, e.g. {"en", "es"}.
type Pair struct{ From, To string }

// String returns the pair as "en-es".
func (p Pair) String() string { return p.From + "-" + p.To }

// Engines are the engines a worker uses: recognisers by source language
// (streaming ones or per-utterance ones; a streaming one is preferred),
// translators by pair, synthesisers by target language.
type Engines struct {
	Recognizers          map[string]Recognizer
	StreamingRecognizers map[string]StreamingRecognizer
	Translators          map[Pair]Translator
	Synthesizers         map[string]Synthesizer
}

// CanRecognize reports whether the engines hear lang, with either kind of
// recogniser.
func (e *Engines) CanRecognize(lang string) bool {
	return e.StreamingRecognizers[lang] != nil || e.Recognizers[lang] != nil
}

// CanProduce reports whether the engines cover speech in from turned into
// speech in to.
func (e *Engines) CanProduce(from, to string) bool {
	return e.CanRecognize(from) && e.Translators[Pair{from, to}] != nil && e.Synthesizers[to] != nil
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
	for _, r := range e.StreamingRecognizers {
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
