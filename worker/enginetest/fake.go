// Package enginetest holds what tests of engines and of the pipeline
// share: fake engines with documented service times (this file), and
// suites every engine of an interface must pass.
package enginetest

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/pentecost/pentecost/worker/engine"
)

// The fakes' service times, as the latency targets assume them.
const (
	// FakeInterimEvery is how often the fake recogniser sends an interim
	// hypothesis while words are being heard.
	FakeInterimEvery = 300 * time.Millisecond
	// FakeFinalAfter is how long after a sentence's last word ends (in the
	// audio sent) its final hypothesis comes.
	FakeFinalAfter = 300 * time.Millisecond
	// FakeStableAfter is how long after a word ends the fake recogniser
	// counts it stable.
	FakeStableAfter = 300 * time.Millisecond
	// FakeTranslateTime is one translation.
	FakeTranslateTime = 150 * time.Millisecond
	// FakeFirstAudio is how long the fake synthesiser takes to its first
	// audio; the rest follows at twice real time.
	FakeFirstAudio = 200 * time.Millisecond
	// FakeWordAudio is how much speech the fake synthesiser makes a word.
	FakeWordAudio = 300 * time.Millisecond
)

// Fault is what a fake does with one call (or, for the recogniser, one
// stream) instead of its normal work.
type Fault struct {
	// Hang blocks until the call's context ends.
	Hang bool
	// Fail fails the call with an engine.Error of code Code
	// (engine.ErrUnavailable when empty).
	Fail bool
	Code string
	// Delay adds to the call's service time.
	Delay time.Duration
}

// apply waits the service time d plus the fault's delay, or hangs, or
// fails; name is the engine's.
func (f Fault) apply(ctx context.Context, name string, d time.Duration) error {
	if f.Hang {
		<-ctx.Done()
		return &engine.Error{Engine: name, Code: engine.ErrTimeout, Err: ctx.Err()}
	}
	t := time.NewTimer(d + f.Delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return &engine.Error{Engine: name, Code: engine.ErrTimeout, Err: ctx.Err()}
	case <-t.C:
	}
	if f.Fail {
		code := f.Code
		if code == "" {
			code = engine.ErrUnavailable
		}
		return &engine.Error{Engine: name, Code: code, Err: errors.New("fake failure")}
	}
	return nil
}

// Word is a word of a FakeRecognizer's script, placed in the audio: Start
// and End from the stream's first sample.
type Word struct {
	Text       string
	Start, End time.Duration
}

// Script places sentences in audio: each sentence's words at rate words a
// second from its start. starts[i] is sentence i's start.
func Script(rate float64, sentences []string, starts []time.Duration) []Word {
	var out []Word
	per := time.Duration(float64(time.Second) / rate)
	for i, s := range sentences {
		t := starts[i]
		for _, w := range strings.Fields(s) {
			out = append(out, Word{Text: w, Start: t, End: t + per})
			t += per
		}
	}
	return out
}

// FakeRecognizer is a StreamingRecognizer that "hears" a script: as the
// audio sent passes a word's end, the word joins the hypothesis. It sends
// an interim hypothesis every FakeInterimEvery while it has unfinalised
// words, counting stable the words that ended FakeStableAfter ago, and a
// final one FakeFinalAfter after a sentence's last word (one ending in . ?
// or !) ends in the audio. The audio's content is ignored.
type FakeRecognizer struct {
	Words []Word
	// Fault, when set, is asked once per stream.
	Fault func() Fault
	// NoStability sends Stable 0, as engines that say nothing of it.
	NoStability bool
}

func (r *FakeRecognizer) Name() string { return "fake-recognizer" }

// Stream opens a stream over the script.
func (r *FakeRecognizer) Stream(ctx context.Context, lang string) (engine.RecognitionStream, error) {
	var f Fault
	if r.Fault != nil {
		f = r.Fault()
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &fakeStream{r: r, f: f, ctx: ctx, cancel: cancel, out: make(chan engine.Hypothesis, 64), in: make(chan int, 1024)}
	go s.run()
	return s, nil
}

type fakeStream struct {
	r      *FakeRecognizer
	f      Fault
	ctx    context.Context
	cancel context.CancelFunc
	in     chan int // samples sent
	out    chan engine.Hypothesis

	mu       sync.Mutex
	err      error
	closed   bool
	sendDone bool
}

func (s *fakeStream) Send(pcm []int16) error {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case s.in <- len(pcm):
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *fakeStream) Results() <-chan engine.Hypothesis { return s.out }

func (s *fakeStream) CloseSend() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.sendDone {
		s.sendDone = true
		close(s.in)
	}
	return nil
}

func (s *fakeStream) Close() error { s.cancel(); return nil }

func (s *fakeStream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *fakeStream) run() {
	defer close(s.out)
	var (
		pos   time.Duration // audio sent so far
		next  int           // first word not yet finalised
		last  string        // last interim sent
		tick  = time.NewTicker(FakeInterimEvery)
		words = s.r.Words
	)
	defer tick.Stop()
	send := func(h engine.Hypothesis) bool {
		if s.f.Hang {
			return true // a stalled stream: hears, says nothing
		}
		if s.f.Delay > 0 {
			t := time.NewTimer(s.f.Delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-s.ctx.Done():
				return false
			}
		}
		select {
		case s.out <- h:
			return true
		case <-s.ctx.Done():
			return false
		}
	}
	// heard returns the hypothesis of the unfinalised words heard by pos.
	heard := func() (engine.Hypothesis, int) {
		var text []string
		stable, end := 0, next
		for i := next; i < len(words) && words[i].End <= pos; i++ {
			text = append(text, words[i].Text)
			if words[i].End <= pos-FakeStableAfter {
				stable = len(strings.Join(text, " "))
			}
			end = i + 1
		}
		h := engine.Hypothesis{Text: strings.Join(text, " "), Stable: stable}
		if next < len(words) {
			h.Start = words[next].Start
		}
		if end > next {
			h.End = words[end-1].End
		}
		if s.r.NoStability {
			h.Stable = 0
		}
		return h, end
	}
	for {
		select {
		case <-s.ctx.Done():
			return
		case n, ok := <-s.in:
			if !ok {
				// No more audio: finalise what was heard.
				if h, end := heard(); end > next {
					h.Final, h.Stable = true, len(h.Text)
					send(h)
				}
				return
			}
			pos += time.Duration(n) * time.Second / engine.SampleRate
			if s.f.Fail && pos > time.Second {
				s.mu.Lock()
				s.err = &engine.Error{Engine: s.r.Name(), Code: engine.ErrUnavailable, Err: errors.New("fake stream dropped")}
				s.mu.Unlock()
				return
			}
			// Finals: a sentence whose last word ended FakeFinalAfter ago.
			for {
				h, end := heard()
				k := -1
				for i := next; i < end; i++ {
					if strings.ContainsAny(words[i].Text[len(words[i].Text)-1:], ".?!") && words[i].End+FakeFinalAfter <= pos {
						k = i
						break
					}
				}
				if k < 0 {
					break
				}
				text := make([]string, 0, k+1-next)
				for i := next; i <= k; i++ {
					text = append(text, words[i].Text)
				}
				h = engine.Hypothesis{Text: strings.Join(text, " "), Final: true, Start: words[next].Start, End: words[k].End}
				h.Stable = len(h.Text)
				next, last = k+1, ""
				if !send(h) {
					return
				}
			}
		case <-tick.C:
			if h, _ := heard(); h.Text != "" && h.Text != last {
				last = h.Text
				if !send(h) {
					return
				}
			}
		}
	}
}

// FakeTranslator is a ContextTranslator that answers "[to] text" after
// FakeTranslateTime (plus Fault's delay).
type FakeTranslator struct {
	// Fault, when set, is asked for every call with its text.
	Fault func(text string) Fault

	mu       sync.Mutex
	contexts [][]string
	calls    int
}

func (t *FakeTranslator) Name() string { return "fake-translator" }

func (t *FakeTranslator) Translate(ctx context.Context, text, from, to string) (string, error) {
	return t.TranslateContext(ctx, text, from, to, nil)
}

// TranslateContext translates and records previous.
func (t *FakeTranslator) TranslateContext(ctx context.Context, text, from, to string, previous []string) (string, error) {
	t.mu.Lock()
	t.calls++
	t.contexts = append(t.contexts, append([]string(nil), previous...))
	t.mu.Unlock()
	var f Fault
	if t.Fault != nil {
		f = t.Fault(text)
	}
	if err := f.apply(ctx, t.Name(), FakeTranslateTime); err != nil {
		return "", err
	}
	return "[" + to + "] " + text, nil
}

// Contexts returns the previous sentences each call was given.
func (t *FakeTranslator) Contexts() [][]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]string(nil), t.contexts...)
}

// FakeSynthesizer is a StreamingSynthesizer: FakeWordAudio of a 200 Hz tone
// per word, the first 100 ms after FakeFirstAudio (plus Fault's delay),
// the rest in 100 ms pieces at twice real time.
type FakeSynthesizer struct {
	// Fault, when set, is asked for every call with its text.
	Fault func(text string) Fault

	mu      sync.Mutex
	prosody []engine.Prosody
}

func (s *FakeSynthesizer) Name() string { return "fake-synthesizer" }

// Synthesize returns the whole speech at once.
func (s *FakeSynthesizer) Synthesize(ctx context.Context, text, lang string) ([]int16, error) {
	var out []int16
	err := s.SynthesizeStream(ctx, text, lang, engine.Prosody{}, func(pcm []int16) error {
		out = append(out, pcm...)
		return nil
	})
	return out, err
}

// SynthesizeStream streams the speech and records p.
func (s *FakeSynthesizer) SynthesizeStream(ctx context.Context, text, lang string, p engine.Prosody, emit func([]int16) error) error {
	s.mu.Lock()
	s.prosody = append(s.prosody, p)
	s.mu.Unlock()
	var f Fault
	if s.Fault != nil {
		f = s.Fault(text)
	}
	if err := f.apply(ctx, s.Name(), FakeFirstAudio); err != nil {
		return err
	}
	n := len(strings.Fields(text)) * int(FakeWordAudio/time.Millisecond) * engine.SampleRate / 1000
	const piece = engine.SampleRate / 10
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for off := 0; off < n; off += piece {
		if off > 0 {
			select {
			case <-ctx.Done():
				return &engine.Error{Engine: s.Name(), Code: engine.ErrTimeout, Err: ctx.Err()}
			case <-t.C:
			}
		}
		pcm := make([]int16, min(piece, n-off))
		for i := range pcm {
			pcm[i] = int16(6000 * math.Sin(2*math.Pi*200*float64(off+i)/engine.SampleRate))
		}
		if err := emit(pcm); err != nil {
			return err
		}
	}
	return nil
}

// Prosody returns the prosody of every call, in order.
func (s *FakeSynthesizer) Prosody() []engine.Prosody {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]engine.Prosody(nil), s.prosody...)
}

var (
	_ engine.StreamingRecognizer  = (*FakeRecognizer)(nil)
	_ engine.ContextTranslator    = (*FakeTranslator)(nil)
	_ engine.StreamingSynthesizer = (*FakeSynthesizer)(nil)
)
