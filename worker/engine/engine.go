// Package engine holds the interfaces of the translation worker's engines
// (recognisers, translators, synthesisers) and the types they share, so
// that each engine can live in a package of its own (worker/vosk,
// worker/llm, …) and the pipeline in package worker imports interfaces
// only. Audio is always 16 kHz mono signed 16-bit samples.
package engine

import (
	"context"
	"time"
)

// SampleRate is the rate of every engine's audio, in and out.
const SampleRate = 16000

// Recognizer turns an utterance of speech into text, one call per
// utterance (the voice detector cuts them).
type Recognizer interface {
	// Name identifies the engine in metrics and logs, e.g. "pocketsphinx".
	Name() string
	// Recognize returns the transcript of pcm spoken in lang; "" when
	// nothing was recognised.
	Recognize(ctx context.Context, pcm []int16, lang string) (string, error)
}

// StreamingRecognizer recognises speech as it arrives, with interim
// hypotheses while a sentence is still being spoken.
type StreamingRecognizer interface {
	// Name identifies the engine in metrics and logs, e.g. "vosk".
	Name() string
	// Stream opens a recognition stream for speech in lang. It ends when
	// ctx ends, when the stream is closed, or when the engine fails.
	Stream(ctx context.Context, lang string) (RecognitionStream, error)
}

// RecognitionStream is one open stream of a StreamingRecognizer.
type RecognitionStream interface {
	// Send passes samples as they arrive, in order. It does not wait for
	// the engine's answers; it fails once the stream has failed (Err).
	Send(pcm []int16) error
	// Results delivers hypotheses in order. It is closed when the stream
	// ends, after the finals of everything sent before CloseSend.
	Results() <-chan Hypothesis
	// CloseSend says no more audio follows: the engine finishes what it
	// heard and Results closes.
	CloseSend() error
	// Close abandons the stream at once.
	Close() error
	// Err is why the stream ended, once Results is closed; nil after a
	// normal end.
	Err() error
}

// Hypothesis is a recogniser's current reading of one segment of speech:
// the words since the previous final.
type Hypothesis struct {
	// Text is the whole segment as heard so far.
	Text string
	// Final means Text will not change; the next hypothesis starts a new
	// segment.
	Final bool
	// Stable is how many leading bytes of Text the engine promises not to
	// change (always len(Text) when Final; 0 when the engine says nothing
	// of stability). It ends on a word boundary.
	Stable int
	// Start and End place the segment in the stream's audio, from the
	// first sample sent; both zero when the engine does not say.
	Start, End time.Duration
}

// Translator translates text from one language to another.
type Translator interface {
	// Name identifies the engine in metrics and logs, e.g. "apertium".
	Name() string
	// Translate returns text, in language from, translated into to.
	Translate(ctx context.Context, text, from, to string) (string, error)
}

// ContextTranslator is a Translator that reads better with the sentences
// spoken before the text (pronouns, names, register).
type ContextTranslator interface {
	Translator
	// TranslateContext translates text like Translate; previous holds the
	// sentences spoken before it, in language from, oldest first, for
	// context only: they are not part of the answer.
	TranslateContext(ctx context.Context, text, from, to string, previous []string) (string, error)
}

// Synthesizer turns text into speech.
type Synthesizer interface {
	// Name identifies the engine in metrics and logs, e.g. "espeak-ng".
	Name() string
	// Synthesize returns text spoken in lang.
	Synthesize(ctx context.Context, text, lang string) ([]int16, error)
}

// Prosody is how the speaker said a segment, measured from their audio,
// for synthesisers that can follow it.
type Prosody struct {
	// Rate is the speaking rate relative to the speaker's usual one (1:
	// usual, 1.2: 20 % faster); 0 when unknown.
	Rate float64
	// Loudness is the segment's speech level relative to the speaker's
	// usual one, in dB (+3: louder); 0 when unknown.
	Loudness float64
}

// StreamingSynthesizer is a Synthesizer that hands out audio as it is
// produced, so that listeners hear the start of a sentence before the
// engine has spoken its end.
type StreamingSynthesizer interface {
	Synthesizer
	// SynthesizeStream speaks text in lang with prosody p, calling emit
	// with the samples in order as they come. An error from emit stops it
	// and is returned.
	SynthesizeStream(ctx context.Context, text, lang string, p Prosody, emit func(pcm []int16) error) error
}

// Error codes an engine's failure is reported with: to the speaker page
// and in metrics, never the engine's own message (it may hold the text).
const (
	ErrTimeout     = "timeout"      // the call did not finish in time
	ErrThrottled   = "throttled"    // the service asked us to slow down (429, ThrottlingException)
	ErrUnavailable = "unavailable"  // cannot be reached, 5xx, connection dropped
	ErrRefused     = "refused"      // credentials or request refused (401, 403, 400)
	ErrBadResponse = "bad_response" // an answer we cannot use (not JSON, empty, a model talking instead of translating)
	ErrUnsupported = "unsupported"  // the language or voice is not available
	ErrInternal    = "internal"     // anything else
)

// Error is an engine failure with a code.
type Error struct {
	// Engine is the engine's Name.
	Engine string
	// Code is one of the Err* codes.
	Code string
	// RetryAfter is how long the service asked us to wait (0: not said).
	RetryAfter time.Duration
	// Err is the cause, for logs; it must not hold user text.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Engine + ": " + e.Code + ": " + e.Err.Error()
	}
	return e.Engine + ": " + e.Code
}

func (e *Error) Unwrap() error { return e.Err }
