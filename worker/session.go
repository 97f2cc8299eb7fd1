package worker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pentecost/pentecost/worker/engine"
)

// frameDuration is the length of one published audio frame.
const frameDuration = 20 * time.Millisecond

// session is the pipeline of one live session: source audio → recogniser
// (a streaming one, or a per-utterance one behind the voice detector) →
// cutter → one stream per target language.
type session struct {
	w      *Worker
	id     string
	source string
	eng    *Engines
	rec    StreamingRecognizer
	log    *slog.Logger

	in chan sourceChunk

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	src sourceAudio

	mu      sync.Mutex
	streams map[string]*stream // guarded by mu
}

// sourceChunk is a chunk of source audio, when it was captured (the
// server's timestamp of the frame) and when it reached the worker.
type sourceChunk struct {
	pcm     []int16
	at      time.Time
	arrived time.Time
}

// sourceAudio is what the session remembers of its source audio: when
// each sample was captured and arrived, and the last minute of samples,
// so that a segment cut from the transcript can be placed in time and
// measured (prosody).
type sourceAudio struct {
	mu       sync.Mutex
	captured timeline
	arrived  timeline
	pcm      []int16 // the last samples; pcm[0] is at offset base
	base     int64
}

func (a *sourceAudio) add(pcm []int16, at, arrived time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.captured.add(len(pcm), at)
	a.arrived.add(len(pcm), arrived)
	a.pcm = append(a.pcm, pcm...)
	if extra := len(a.pcm) - timelineKeep; extra > timelineKeep/4 {
		a.pcm = append(a.pcm[:0], a.pcm[extra:]...)
		a.base += int64(extra)
	}
}

func (a *sourceAudio) total() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.captured.total
}

// span returns what is known of the audio between two offsets: capture
// time of the first sample, arrival time of the last, and the samples.
func (a *sourceAudio) span(from, to int64) (start, arrivedEnd time.Time, pcm []int16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	to = min(to, a.captured.total)
	from = min(from, to)
	start = a.captured.at(from)
	arrivedEnd = a.arrived.at(max(to-1, 0))
	lo, hi := max(from-a.base, 0), max(to-a.base, 0)
	pcm = append([]int16(nil), a.pcm[lo:hi]...)
	return start, arrivedEnd, pcm
}

func newSession(w *Worker, id, source string, eng *Engines) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{w: w, id: id, source: source, eng: eng, log: w.Logger.With(logSession, id),
		in: make(chan sourceChunk, 1024), ctx: ctx, cancel: cancel, streams: make(map[string]*stream)}
	s.rec = eng.StreamingRecognizers[source]
	if s.rec == nil {
		rec := eng.Recognizers[source]
		s.rec = &utteranceStreamer{rec: rec, vad: w.newSegmenter, deadline: w.Deadline,
			onCut: func() { w.m.segments.WithLabelValues(source).Inc() },
			onError: func(err error, took time.Duration) {
				w.m.stage.WithLabelValues("recognize", rec.Name(), source).Observe(took.Seconds())
				s.recognitionFailed(rec.Name(), err)
			},
			onDone: func(took time.Duration) {
				w.m.stage.WithLabelValues("recognize", rec.Name(), source).Observe(took.Seconds())
			}}
	}
	s.wg.Add(1)
	go s.run()
	return s
}

// push hands source audio, captured up to at, to the pipeline; it never
// blocks the connection's reader: audio that does not fit is dropped and
// counted.
func (s *session) push(pcm []int16, at time.Time) {
	select {
	case s.in <- sourceChunk{pcm: pcm, at: at, arrived: s.w.Now()}:
	default:
		s.w.m.dropped.WithLabelValues("recognize", s.source).Inc()
	}
}

// stop ends the pipeline and waits for it.
func (s *session) stop() {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	streams := s.streams
	s.streams = map[string]*stream{}
	s.mu.Unlock()
	for _, st := range streams {
		st.stop()
	}
}

// run feeds the source audio to the recogniser as it arrives. A stream
// that fails is counted, reported, and opened again after a second; the
// audio meanwhile is not recognised.
func (s *session) run() {
	defer s.wg.Done()
	for s.ctx.Err() == nil {
		rs, err := s.rec.Stream(s.ctx, s.source)
		if err != nil {
			s.recognitionFailed(s.rec.Name(), err)
			if !s.pause(time.Second) {
				return
			}
			continue
		}
		base := s.src.total()
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.results(rs, base)
		}()
		s.feed(rs, done)
		_ = rs.Close()
		<-done
		if err := rs.Err(); err != nil && s.ctx.Err() == nil {
			s.recognitionFailed(s.rec.Name(), err)
			if !s.pause(time.Second) {
				return
			}
		}
	}
}

// pause waits d unless the session stops first.
func (s *session) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// feed sends source audio to rs until the session stops or the stream
// ends (done).
func (s *session) feed(rs RecognitionStream, done <-chan struct{}) {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-done:
			return
		case c := <-s.in:
			at := c.at
			if at.IsZero() {
				at = c.arrived // a server that sends no timestamp
			}
			s.src.add(c.pcm, at, c.arrived)
			if err := rs.Send(c.pcm); err != nil {
				return
			}
		}
	}
}

// results reads a recognition stream: interim hypotheses become interim
// source captions, final ones final captions, and the cutter turns the
// stable transcript into segments for every target language.
func (s *session) results(rs RecognitionStream, base int64) {
	var (
		c       = cutter{maxWords: s.w.MaxSegmentWords}
		meter   prosodyMeter
		last    string
		tailWas string // the preview last offered: an unchanged one is not translated again
		segFrom = base // offset where the uncut speech starts
		hypFrom = base
	)
	for h := range rs.Results() {
		now := s.w.Now()
		h.Text = strings.TrimSpace(h.Text)
		// Where this hypothesis's speech lies in the session's audio.
		hypTo := s.src.total()
		if h.End > 0 {
			hypTo = base + durationSamples(h.End)
		}
		if h.Start > 0 || h.End > 0 {
			hypFrom = base + durationSamples(h.Start)
			segFrom = max(segFrom, hypFrom)
		}
		if h.Text != "" && (h.Final || h.Text != last) {
			if err := s.w.client.PublishCaption(s.ctx, s.id, s.source, h.Text, h.Final); err != nil && s.ctx.Err() == nil {
				s.log.Warn("publishing transcript", logError, err)
			}
		}
		last = h.Text
		if h.Final {
			last = ""
			if h.Text != "" {
				s.w.m.utterances.WithLabelValues(s.source).Inc()
			}
		}
		cuts, tail := c.next(h, now)
		for _, k := range cuts {
			// Place the segment in the audio by its words' share of the
			// hypothesis (engines rarely time each word).
			to := hypTo
			if k.n > 0 && k.last < k.n && !h.Final {
				to = hypFrom + (hypTo-hypFrom)*int64(k.last)/int64(k.n)
			}
			to = max(to, segFrom)
			start, arrived, pcm := s.src.span(segFrom, to)
			if arrived.IsZero() {
				arrived = now
			}
			seg := &segment{text: k.text, previous: k.previous, sentenceEnd: k.sentenceEnd,
				start: start, dur: samplesDuration(to - segFrom), spoken: arrived, cutAt: now,
				prosody: meter.measure(pcm, len(strings.Fields(k.text)))}
			segFrom = to
			s.each(func(st *stream) { st.push(seg) })
		}
		if h.Final {
			segFrom = max(segFrom, hypTo)
		}
		if len(cuts) > 0 {
			tailWas = ""
		}
		if tail != "" && tail != tailWas {
			// Every preview is an engine call per language (paid, with a
			// cloud engine): only a changed one is worth it.
			tailWas = tail
			s.each(func(st *stream) { st.previewTail(tail) })
		}
	}
}

// each calls f for every target language's stream.
func (s *session) each(f func(*stream)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.streams {
		f(st)
	}
}

// recognitionFailed counts and reports a recogniser's failure.
func (s *session) recognitionFailed(name string, err error) {
	s.w.m.errors.WithLabelValues("recognize", name, s.source).Inc()
	logEngineFailure(s.log, "recognition failed", name, err)
	code := errorCode(err)
	s.each(func(st *stream) { st.status.fail("recognize", code) })
}

func durationSamples(d time.Duration) int64 { return int64(d) * SampleRate / int64(time.Second) }

// errorCode returns an engine error's code, ErrInternal for any other.
func errorCode(err error) string {
	var e *engine.Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return engine.ErrTimeout
	}
	return engine.ErrInternal
}

// timeoutError reports an engine call cut by its deadline.
func timeoutError(name string, err error) error {
	return &engine.Error{Engine: name, Code: engine.ErrTimeout, Err: err}
}

// logEngineFailure logs an engine's failure at warn level. The error says
// how an offline engine ended but not what it wrote on standard error,
// which may quote its input: transcripts are logged at no level.
func logEngineFailure(log *slog.Logger, msg, engine string, err error) {
	log.Warn(msg, logEngine, engine, logError, err)
}

// addStream starts producing lang.
func (s *session) addStream(lang string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[lang] == nil {
		s.streams[lang] = newStream(s, lang)
	}
}

// removeStream stops producing lang.
func (s *session) removeStream(lang string) {
	s.mu.Lock()
	st := s.streams[lang]
	delete(s.streams, lang)
	s.mu.Unlock()
	if st != nil {
		st.stop()
	}
}

// languages returns the languages being produced.
func (s *session) languages() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.streams))
	for l := range s.streams {
		out[l] = true
	}
	return out
}
