package worker

import (
	"context"
	"strings"
	"sync"
	"time"
)

// ConcurrentRecognizer is a Recognizer that may recognise several
// utterances of one session at once (a remote batch engine whose latency
// is longer than an utterance). Its transcripts are still used in order.
type ConcurrentRecognizer interface {
	Recognizer
	// Concurrency is how many utterances of a session may be in flight.
	Concurrency() int
}

// utteranceStreamer makes a per-utterance Recognizer a StreamingRecognizer,
// so that the pipeline has one shape for both: the voice detector cuts the
// audio sent into utterances and each recognised utterance becomes one
// final hypothesis, placed in the stream's audio by Start and End.
type utteranceStreamer struct {
	rec      Recognizer
	vad      func() *Segmenter
	deadline time.Duration // per recognition; 0: none
	// onCut is called for every utterance cut (metrics); onError for a
	// failed recognition, which skips that utterance only.
	onCut   func()
	onError func(err error, took time.Duration)
	onDone  func(took time.Duration)
}

func (u *utteranceStreamer) Name() string { return u.rec.Name() }

// Stream opens a stream whose goroutines end with ctx or after CloseSend.
func (u *utteranceStreamer) Stream(ctx context.Context, lang string) (RecognitionStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	n := 1
	if c, ok := u.rec.(ConcurrentRecognizer); ok {
		n = max(c.Concurrency(), 1)
	}
	st := &uttStream{u: u, lang: lang, ctx: ctx, cancel: cancel, in: make(chan []int16, 1024),
		out: make(chan Hypothesis, 16), inflight: make(chan *recognition, n), closed: make(chan struct{})}
	go st.segment()
	go st.deliver()
	return st, nil
}

type uttStream struct {
	u      *utteranceStreamer
	lang   string
	ctx    context.Context
	cancel context.CancelFunc

	in        chan []int16
	out       chan Hypothesis
	inflight  chan *recognition
	closed    chan struct{}
	closeOnce sync.Once
}

// recognition is one utterance's recognition, in flight or done.
type recognition struct {
	u      Utterance
	start  time.Time
	text   string
	err    error
	done   chan struct{}
	start0 time.Duration
	end0   time.Duration
}

func (s *uttStream) Send(pcm []int16) error {
	select {
	case s.in <- pcm:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *uttStream) Results() <-chan Hypothesis { return s.out }

func (s *uttStream) CloseSend() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

func (s *uttStream) Close() error {
	s.cancel()
	return nil
}

func (s *uttStream) Err() error { return nil }

// segment cuts utterances and starts their recognitions, at most the
// recogniser's concurrency at once. A pause in the audio itself (the
// speaker paused or left) ends the utterance in progress.
func (s *uttStream) segment() {
	defer close(s.inflight)
	seg := s.u.vad()
	emit := func(u Utterance) {
		if s.u.onCut != nil {
			s.u.onCut()
		}
		start := samplesDuration(u.Offset)
		// The utterance keeps up to 100 ms of the silence after its speech.
		end := start + samplesDuration(int64(len(u.PCM))) - min(u.Trailing, 100*time.Millisecond)
		r := &recognition{u: u, start: time.Now(), done: make(chan struct{}), start0: start, end0: end}
		select {
		case s.inflight <- r:
		case <-s.ctx.Done():
			return
		}
		go func() {
			defer close(r.done)
			ctx, cancel := s.ctx, context.CancelFunc(func() {})
			if s.u.deadline > 0 {
				ctx, cancel = context.WithTimeout(s.ctx, s.u.deadline)
			}
			defer cancel()
			r.text, r.err = s.u.rec.Recognize(ctx, u.PCM, s.lang)
			if r.err != nil && ctx.Err() != nil && s.ctx.Err() == nil {
				r.err = timeoutError(s.u.rec.Name(), r.err)
			}
		}()
	}
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.closed:
			seg.Flush(emit)
			return
		case pcm := <-s.in:
			seg.Write(pcm, emit)
			idle.Reset(seg.Hangover + 100*time.Millisecond)
		case <-idle.C:
			seg.Flush(emit)
		}
	}
}

// deliver hands out the recognitions' transcripts in the order spoken.
func (s *uttStream) deliver() {
	defer close(s.out)
	for r := range s.inflight {
		select {
		case <-r.done:
		case <-s.ctx.Done():
			return
		}
		took := time.Since(r.start)
		if r.err != nil {
			if s.u.onError != nil {
				s.u.onError(r.err, took)
			}
			continue
		}
		if s.u.onDone != nil {
			s.u.onDone(took)
		}
		text := strings.TrimSpace(r.text)
		if text == "" {
			continue
		}
		select {
		case s.out <- Hypothesis{Text: text, Final: true, Stable: len(text), Start: r.start0, End: r.end0}:
		case <-s.ctx.Done():
			return
		}
	}
}
