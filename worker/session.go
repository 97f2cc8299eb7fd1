package worker

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// frameDuration is the length of one published audio frame.
const frameDuration = 20 * time.Millisecond

// session is the pipeline of one live session: source audio → segmenter →
// recogniser → one stream per target language.
type session struct {
	w      *Worker
	id     string
	source string
	rec    Recognizer
	log    *slog.Logger

	in   chan sourceChunk
	utts chan utterance

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	streams map[string]*stream // guarded by mu
}

// sourceChunk is a chunk of source audio and when it was captured (the
// server's timestamp of the frame).
type sourceChunk struct {
	pcm []int16
	at  time.Time
}

// utterance is a segment to recognise, when its speech ended (by the
// worker's clock, for the delay metric), and the capture time and length
// of its source speech, which its translations carry to listeners.
type utterance struct {
	pcm   []int16
	end   time.Time
	start time.Time     // capture time of pcm's first sample; zero if unknown
	dur   time.Duration // length of pcm
}

func newSession(w *Worker, id, source string) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{w: w, id: id, source: source, rec: w.Engines.Recognizers[source],
		log: w.Logger.With(logSession, id), in: make(chan sourceChunk, 1024), utts: make(chan utterance, 8),
		ctx: ctx, cancel: cancel, streams: make(map[string]*stream)}
	s.wg.Add(2)
	go s.segment()
	go s.recognize()
	return s
}

// push hands source audio, captured up to at, to the pipeline; it never
// blocks the connection's reader: audio that does not fit is dropped and
// counted.
func (s *session) push(pcm []int16, at time.Time) {
	select {
	case s.in <- sourceChunk{pcm: pcm, at: at}:
	default:
		s.w.m.dropped.WithLabelValues(s.source).Inc()
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

// segment cuts the source audio into utterances. A pause in the audio
// itself (the speaker paused or left) ends the utterance in progress.
func (s *session) segment() {
	defer s.wg.Done()
	seg := s.w.newSegmenter()
	// The segmenter sees exactly the chunks recorded here, so its sample
	// offsets are the timeline's.
	var tl timeline
	emit := func(u Utterance) {
		s.w.m.segments.WithLabelValues(s.source).Inc()
		select {
		case s.utts <- utterance{pcm: u.PCM, end: s.w.Now().Add(-u.Trailing),
			start: tl.at(u.Offset), dur: samplesDuration(int64(len(u.PCM)))}:
		default:
			s.w.m.dropped.WithLabelValues(s.source).Inc()
			s.log.Warn("recogniser behind: utterance dropped")
		}
	}
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case c := <-s.in:
			at := c.at
			if at.IsZero() {
				at = s.w.Now() // a server that sends no timestamp
			}
			tl.add(len(c.pcm), at)
			seg.Write(c.pcm, emit)
			idle.Reset(seg.Hangover + 100*time.Millisecond)
		case <-idle.C:
			seg.Flush(emit)
		}
	}
}

// ConcurrentRecognizer is a Recognizer that may recognise several
// utterances of one session at once (a remote batch engine whose latency
// is longer than an utterance). Its transcripts are still used in order.
type ConcurrentRecognizer interface {
	Recognizer
	// Concurrency is how many utterances of a session may be in flight.
	Concurrency() int
}

// recognition is one utterance's recognition, in flight or done.
type recognition struct {
	u     utterance
	start time.Time
	text  string
	err   error
	done  chan struct{}
}

// recognize turns utterances into transcripts, publishes them as source
// captions and hands them to every target language's stream, in the order
// they were spoken. Most engines take one utterance at a time; a
// ConcurrentRecognizer takes up to its Concurrency.
func (s *session) recognize() {
	defer s.wg.Done()
	n := 1
	if c, ok := s.rec.(ConcurrentRecognizer); ok {
		n = max(c.Concurrency(), 1)
	}
	// slots bounds the recognitions started and not yet delivered.
	slots := make(chan struct{}, n)
	inflight := make(chan *recognition, n)
	s.wg.Add(1)
	go s.deliver(inflight, slots)
	defer close(inflight)
	for {
		select {
		case <-s.ctx.Done():
			return
		case slots <- struct{}{}:
		}
		var u utterance
		select {
		case <-s.ctx.Done():
			return
		case u = <-s.utts:
		}
		r := &recognition{u: u, start: time.Now(), done: make(chan struct{})}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(r.done)
			r.text, r.err = s.rec.Recognize(s.ctx, u.pcm, s.source)
		}()
		inflight <- r // never blocks: a slot was taken
	}
}

// deliver takes recognitions in order as they finish.
func (s *session) deliver(inflight <-chan *recognition, slots <-chan struct{}) {
	defer s.wg.Done()
	for r := range inflight {
		select {
		case <-r.done:
		case <-s.ctx.Done():
			return
		}
		if s.ctx.Err() != nil {
			return
		}
		s.transcribed(r)
		<-slots
	}
}

// transcribed publishes one recognition's result.
func (s *session) transcribed(r *recognition) {
	s.w.m.observe("recognize", s.rec.Name(), s.source, r.start)
	if r.err != nil {
		s.w.m.errors.WithLabelValues("recognize", s.source).Inc()
		logEngineFailure(s.log, "recognition failed", s.rec.Name(), r.err)
		return
	}
	text := strings.TrimSpace(r.text)
	if text == "" {
		return
	}
	s.w.m.utterances.WithLabelValues(s.id, s.source).Inc()
	s.log.Debug("utterance recognised", logDuration, time.Since(r.start), logSamples, len(r.u.pcm))
	if err := s.w.client.PublishCaption(s.ctx, s.id, s.source, text, true); err != nil {
		s.log.Warn("publishing transcript", logError, err)
	}
	s.mu.Lock()
	for _, st := range s.streams {
		st.push(job{text: text, end: r.u.end, start: r.u.start, dur: r.u.dur})
	}
	s.mu.Unlock()
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

// stream produces one target language of a session: it translates and
// synthesises transcripts in order, and plays the speech out in real time,
// one utterance after another.
type stream struct {
	s    *session
	lang string
	tr   Translator
	syn  Synthesizer
	log  *slog.Logger

	jobs   chan job
	speech chan speech

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	pace pacer // owned by play
}

// job is a transcript to translate; end, start and dur are its utterance's.
type job struct {
	text  string
	end   time.Time
	start time.Time
	dur   time.Duration
}

type speech struct {
	text  string
	pcm   []int16
	end   time.Time
	start time.Time     // capture time of the source speech
	dur   time.Duration // length of the source speech
}

func newStream(s *session, lang string) *stream {
	ctx, cancel := context.WithCancel(s.ctx)
	st := &stream{s: s, lang: lang, tr: s.w.Engines.Translators[Pair{s.source, lang}], syn: s.w.Engines.Synthesizers[lang],
		log: s.log.With(logLanguage, lang), jobs: make(chan job, 8), speech: make(chan speech, 4), ctx: ctx, cancel: cancel}
	st.wg.Add(2)
	go st.produce()
	go st.play()
	return st
}

func (st *stream) stop() {
	st.cancel()
	st.wg.Wait()
}

// push queues a transcript; a stream too far behind drops it.
func (st *stream) push(j job) {
	select {
	case st.jobs <- j:
	default:
		st.s.w.m.dropped.WithLabelValues(st.lang).Inc()
		st.log.Warn("stream behind: utterance dropped")
	}
}

// produce translates and synthesises; an engine failure skips the
// utterance for this language only.
func (st *stream) produce() {
	defer st.wg.Done()
	w, pair := st.s.w, Pair{st.s.source, st.lang}
	for {
		var j job
		select {
		case <-st.ctx.Done():
			return
		case j = <-st.jobs:
		}
		text, ok := w.Cache.Get(pair, j.text)
		if ok {
			w.m.cacheHits.Inc()
		} else {
			start := time.Now()
			var err error
			text, err = st.tr.Translate(st.ctx, j.text, pair.From, pair.To)
			if st.ctx.Err() != nil {
				return
			}
			w.m.observe("translate", st.tr.Name(), st.lang, start)
			if err == nil && strings.TrimSpace(text) == "" {
				err = errEmpty
			}
			if err != nil {
				w.m.errors.WithLabelValues("translate", st.lang).Inc()
				logEngineFailure(st.log, "translation failed: utterance skipped", st.tr.Name(), err)
				continue
			}
			text = strings.TrimSpace(text)
			w.Cache.Put(pair, j.text, text)
		}
		start := time.Now()
		pcm, err := st.syn.Synthesize(st.ctx, text, st.lang)
		if st.ctx.Err() != nil {
			return
		}
		w.m.observe("synthesize", st.syn.Name(), st.lang, start)
		if err == nil && len(pcm) == 0 {
			err = errEmpty
		}
		if err != nil {
			w.m.errors.WithLabelValues("synthesize", st.lang).Inc()
			logEngineFailure(st.log, "synthesis failed: utterance skipped", st.syn.Name(), err)
			continue
		}
		select {
		case st.speech <- speech{text: text, pcm: pcm, end: j.end, start: j.start, dur: j.dur}:
		case <-st.ctx.Done():
			return
		}
	}
}

// play publishes each utterance's caption and then its audio in 20 ms
// frames, paced by the clock (see pacer): never faster than real time, and
// a late frame moves the schedule instead of being followed by a
// catching-up burst.
func (st *stream) play() {
	defer st.wg.Done()
	w := st.s.w
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	buf := make([]byte, 2*FrameSamples)
	for {
		var sp speech
		select {
		case <-st.ctx.Done():
			return
		case sp = <-st.speech:
		}
		if err := w.client.PublishCaption(st.ctx, st.s.id, st.lang, sp.text, true); err != nil && st.ctx.Err() == nil {
			st.log.Warn("publishing caption", logError, err)
		}
		st.pace.start(time.Now())
		for off := 0; off < len(sp.pcm); off += FrameSamples {
			if d := st.pace.wait(time.Now()); d > 0 {
				timer.Reset(d)
				select {
				case <-st.ctx.Done():
					return
				case <-timer.C:
				}
			}
			clear(buf)
			PutPCM(buf, sp.pcm[off:min(off+FrameSamples, len(sp.pcm))])
			src := frameSourceTime(sp.start, sp.dur, off, len(sp.pcm))
			if err := w.client.PublishAudioAt(st.ctx, st.s.id, st.lang, buf, src); err != nil && st.ctx.Err() == nil {
				st.log.Warn("publishing audio", logError, err)
			}
			w.m.audio.WithLabelValues(st.lang).Add(frameDuration.Seconds())
			if off == 0 {
				w.m.delay.WithLabelValues(st.s.id, st.lang).Observe(w.Now().Sub(sp.end).Seconds())
			}
			st.pace.sent(time.Now())
		}
		w.m.utterances.WithLabelValues(st.s.id, st.lang).Inc()
	}
}

// paceJitter is how late a frame may leave and still keep the schedule:
// timers fire a little late, and a schedule that moved for every such
// delay would play slower than real time. The next frame makes that up,
// so it may leave up to paceJitter less than a frame after this one.
const paceJitter = 5 * time.Millisecond

// pacer schedules a stream's frames in real time. A frame never leaves
// before its time; frames of an utterance follow the previous utterance's;
// and a frame later than paceJitter (a stall) moves the schedule, so that
// the next frame leaves a whole frame after it. So no run of frames ever
// leaves more than paceJitter faster than real time, and none at all
// after a stall: a listener's queue never receives a catching-up burst.
type pacer struct {
	next time.Time // when the next frame may leave
}

// start begins an utterance: its first frame may leave now, or when the
// previous utterance's last frame has had its time.
func (p *pacer) start(now time.Time) {
	if p.next.Before(now) {
		p.next = now
	}
}

// wait returns how long the next frame must wait.
func (p *pacer) wait(now time.Time) time.Duration { return p.next.Sub(now) }

// sent records that a frame has left; now is when its publication
// returned.
func (p *pacer) sent(now time.Time) {
	if now.Sub(p.next) > paceJitter {
		p.next = now
	}
	p.next = p.next.Add(frameDuration)
}
