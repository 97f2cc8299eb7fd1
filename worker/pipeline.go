package worker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/worker/opus"
)

// segment is a piece of the transcript cut for translation, shared by
// every target language of a session (read-only once cut).
type segment struct {
	text        string
	previous    []string // context, in the source language, oldest first
	sentenceEnd bool
	start       time.Time     // capture time of its source speech; zero if unknown
	dur         time.Duration // length of its source speech
	spoken      time.Time     // when the end of its speech reached the worker
	cutAt       time.Time     // when it was cut
	prosody     Prosody
}

// piece is synthesised audio of a segment on its way to the player; a
// piece with end set closes the segment.
type piece struct {
	seg   *segment
	pcm   []int16
	off   int // samples of the segment's speech before pcm
	total int // the segment's whole speech in samples, when known
	end   bool
}

// stream produces one target language of a session: it translates each
// segment with the previous sentences as context, publishes the
// translation as a caption (interim until its sentence ends), synthesises
// it, and plays the speech out in real time while the next segment is
// already being translated.
//
// The speech goes out as Opus, encoded once for all the language's
// listeners, and as PCM only while some listener of the language takes
// PCM (see send). One encoder serves the stream for its whole life, not
// one per segment: a listener's decoder carries its state from one
// segment to the next, and an encoder that started afresh at every
// segment would begin each with predictions the decoder does not share,
// costing the first frames' quality. The encoder's 6.5 ms lookahead means
// the last 6.5 ms of a segment come out with the next one's first packet;
// synthesisers end their speech with silence, so nothing is heard late.
//
// Two bounds keep the language live. Each segment's chain, from the end of
// its speech through recognition, translation and synthesis, must finish
// within Worker.Deadline: a stuck engine call is cut there and costs that
// segment, not the ones after it. And a language more than Worker.Budget
// behind the speaker (the segment's speech ended that long ago, counting
// the audio still queued to play) skips synthesis, still captioning, and
// the player drops audio that became that stale: it catches up instead of
// staying behind for the rest of the talk.
type stream struct {
	s    *session
	lang string
	tr   Translator
	syn  Synthesizer
	log  *slog.Logger

	segs    chan *segment
	preview chan string // the latest stable uncut words; capacity 1
	audio   chan piece

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	queued time.Duration // audio handed to the player and not yet played; guarded by mu

	status statusTracker
	pace   pacer // owned by play

	// send says what play publishes, sendOpus and sendPCM bits, as the
	// session list's demand last said (setDemand).
	send atomic.Uint32
	// enc is the stream's Opus encoder; nil where the build has none
	// (CGO_ENABLED=0): the stream then sends PCM only.
	enc *opus.Encoder
	// Owned by play: frames of the last Opus packet not yet played, and
	// room for a segment's last, partial frame.
	packetLeft int
	last       [FrameSamples]int16

	// Owned by produce: the current sentence's translations, and the
	// source text before the next segment (context for previews).
	sentence []string
	context  []string
}

func newStream(s *session, lang string) *stream {
	ctx, cancel := context.WithCancel(s.ctx)
	st := &stream{s: s, lang: lang, tr: s.eng.Translators[Pair{s.source, lang}], syn: s.eng.Synthesizers[lang],
		log: s.log.With(logLanguage, lang), segs: make(chan *segment, 64), preview: make(chan string, 1),
		audio: make(chan piece, 4096), ctx: ctx, cancel: cancel}
	if enc, err := opus.NewEncoder(0); err == nil {
		st.enc = enc
	} else if !errors.Is(err, opus.ErrNoCgo) {
		st.log.Warn("no Opus encoder: publishing PCM only", logError, err)
	}
	st.send.Store(sendPCM)
	s.w.m.pcmLangs.Inc()
	st.status = statusTracker{report: func(ls LanguageStatus) {
		if r := s.w.StatusReporter; r != nil {
			if err := r(s.id, lang, ls); err != nil && ctx.Err() == nil {
				st.log.Debug("reporting status", logError, err)
			}
		}
	}, notify: make(chan struct{}, 1)}
	st.wg.Add(3)
	go st.produce()
	go st.play()
	go func() {
		defer st.wg.Done()
		st.status.run(ctx)
	}()
	return st
}

// What a stream publishes (stream.send).
const (
	sendOpus = 1 << iota
	sendPCM
)

// setDemand sets what the stream publishes from the session list: Opus
// where the server takes it and the stream has an encoder; PCM while the
// list counts listeners of PCM in the stream's language, and always
// without Opus.
func (st *stream) setDemand(ws client.WorkerSession) {
	var send uint32 = sendPCM
	if ws.TakesOpus() && st.enc != nil {
		send = sendOpus
		if ws.PCMLanguages[st.lang] > 0 {
			send |= sendPCM
		}
	}
	st.pcmChange(st.send.Swap(send), send)
}

// pcmChange counts a change of whether the stream publishes PCM.
func (st *stream) pcmChange(old, send uint32) {
	switch {
	case old&sendPCM == 0 && send&sendPCM != 0:
		st.s.w.m.pcmLangs.Inc()
	case old&sendPCM != 0 && send&sendPCM == 0:
		st.s.w.m.pcmLangs.Dec()
	}
}

func (st *stream) stop() {
	st.cancel()
	st.wg.Wait()
	st.pcmChange(st.send.Swap(0), 0)
}

// push queues a segment; a stream too far behind drops it.
func (st *stream) push(seg *segment) {
	select {
	case st.segs <- seg:
	default:
		st.s.w.m.dropped.WithLabelValues("translate", st.lang).Inc()
		st.log.Warn("stream behind: segment dropped")
	}
}

// previewTail offers the stable words not yet cut, for an interim
// caption; a newer offer replaces one not yet taken.
func (st *stream) previewTail(text string) {
	for {
		select {
		case st.preview <- text:
			return
		default:
		}
		select {
		case <-st.preview:
		default:
		}
	}
}

// lag is how far behind the speaker the language is for seg: how long ago
// its speech ended, plus the audio queued before it.
func (st *stream) lag(seg *segment) time.Duration {
	st.mu.Lock()
	q := st.queued
	st.mu.Unlock()
	return st.s.w.Now().Sub(seg.spoken) + q
}

// produce translates and synthesises segments in order; previews are
// translated only when no segment waits.
func (st *stream) produce() {
	defer st.wg.Done()
	for {
		select {
		case <-st.ctx.Done():
			return
		case seg := <-st.segs:
			st.segment(seg)
			continue
		default:
		}
		select {
		case <-st.ctx.Done():
			return
		case seg := <-st.segs:
			st.segment(seg)
		case tail := <-st.preview:
			st.previewCaption(tail)
		}
	}
}

// segment handles one segment within its deadline.
func (st *stream) segment(seg *segment) {
	w := st.s.w
	ctx, cancel := st.ctx, context.CancelFunc(func() {})
	if w.Deadline > 0 {
		ctx, cancel = context.WithDeadline(st.ctx, seg.spoken.Add(w.Deadline))
	}
	defer cancel()
	st.context = append(append([]string(nil), seg.previous...), seg.text)
	var text string
	if seg.text != "" {
		var ok bool
		if text, ok = st.translate(ctx, seg.text, seg.previous, false); !ok {
			if seg.sentenceEnd {
				st.caption(true)
			}
			return
		}
		st.sentence = append(st.sentence, text)
	}
	st.caption(seg.sentenceEnd)
	if seg.sentenceEnd {
		// A preview offered before this segment belongs to the sentence
		// just finished: shown now it would follow its final caption.
		select {
		case <-st.preview:
		default:
		}
	}
	if text == "" || st.ctx.Err() != nil {
		return
	}
	if lag := st.lag(seg); w.Budget > 0 && lag > w.Budget {
		w.m.stale.WithLabelValues(st.lang, "synthesis").Inc()
		st.log.Info("language behind: synthesis of a segment skipped", "lag", lag)
		return
	}
	st.synthesize(ctx, seg, text)
}

// translate translates text (from the cache when it can); ok is false when
// the engine failed, which is counted and reported.
// A preview's failure is neither counted nor reported: the segment's own
// translation will be.
func (st *stream) translate(ctx context.Context, text string, previous []string, preview bool) (string, bool) {
	w, pair := st.s.w, Pair{st.s.source, st.lang}
	if out, ok := w.Cache.Get(pair, text); ok {
		w.m.cacheHits.Inc()
		return out, true
	}
	st.status.stage("translate")
	start := time.Now()
	var out string
	var err error
	if ct, ok := st.tr.(ContextTranslator); ok && len(previous) > 0 {
		out, err = ct.TranslateContext(ctx, text, pair.From, pair.To, previous)
	} else {
		out, err = st.tr.Translate(ctx, text, pair.From, pair.To)
	}
	st.status.stage("")
	if st.ctx.Err() != nil {
		return "", false
	}
	w.m.observe("translate", st.tr.Name(), st.lang, start)
	if err == nil && strings.TrimSpace(out) == "" {
		err = errEmpty
	}
	if err != nil && preview {
		return "", false
	}
	if err != nil {
		if ctx.Err() != nil {
			err = timeoutError(st.tr.Name(), err)
		}
		w.m.errors.WithLabelValues("translate", st.tr.Name(), st.lang).Inc()
		st.status.fail("translate", errorCode(err))
		logEngineFailure(st.log, "translation failed: segment skipped", st.tr.Name(), err)
		return "", false
	}
	st.status.ok("translate")
	out = strings.TrimSpace(out)
	if !preview {
		w.Cache.Put(pair, text, out)
	}
	return out, true
}

// caption publishes the sentence so far: final when it ends.
func (st *stream) caption(final bool) {
	text := strings.Join(st.sentence, " ")
	if final {
		st.sentence = nil
	}
	if text == "" {
		return
	}
	if err := st.s.w.client.PublishCaption(st.ctx, st.s.id, st.lang, text, final); err != nil && st.ctx.Err() == nil {
		st.log.Warn("publishing caption", logError, err)
	}
}

// previewCaption translates the stable words not yet cut and publishes
// them after the sentence's translated segments, as an interim caption.
func (st *stream) previewCaption(tail string) {
	w := st.s.w
	ctx, cancel := context.WithTimeout(st.ctx, max(w.Deadline, time.Second))
	defer cancel()
	out, ok := st.translate(ctx, tail, st.context, true)
	if !ok {
		return
	}
	text := strings.Join(append(append([]string(nil), st.sentence...), out), " ")
	if err := w.client.PublishCaption(st.ctx, st.s.id, st.lang, text, false); err != nil && st.ctx.Err() == nil {
		st.log.Warn("publishing caption", logError, err)
	}
}

// synthesize speaks text, streaming its audio to the player as it comes.
// A failure is counted and reported; the caption is out already.
func (st *stream) synthesize(ctx context.Context, seg *segment, text string) {
	w := st.s.w
	st.status.stage("synthesize")
	defer st.status.stage("")
	start := time.Now()
	off := 0
	emit := func(pcm []int16) error {
		if len(pcm) == 0 {
			return nil
		}
		p := piece{seg: seg, pcm: pcm, off: off}
		off += len(pcm)
		st.mu.Lock()
		st.queued += samplesDuration(int64(len(pcm)))
		st.mu.Unlock()
		select {
		case st.audio <- p:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var err error
	if ss, ok := st.syn.(StreamingSynthesizer); ok {
		err = ss.SynthesizeStream(ctx, text, st.lang, seg.prosody, emit)
	} else {
		var pcm []int16
		pcm, err = st.syn.Synthesize(ctx, text, st.lang)
		if err == nil {
			err = emit(pcm)
		}
	}
	if st.ctx.Err() != nil {
		return
	}
	w.m.observe("synthesize", st.syn.Name(), st.lang, start)
	if err == nil && off == 0 {
		err = errEmpty
	}
	if err != nil {
		if ctx.Err() != nil {
			err = timeoutError(st.syn.Name(), err)
		}
		w.m.errors.WithLabelValues("synthesize", st.syn.Name(), st.lang).Inc()
		st.status.fail("synthesize", errorCode(err))
		logEngineFailure(st.log, "synthesis failed: segment not spoken", st.syn.Name(), err)
	} else {
		st.status.ok("synthesize")
	}
	if off > 0 {
		select {
		case st.audio <- piece{seg: seg, end: true, total: off}:
		case <-st.ctx.Done():
		}
	}
}

// play publishes the audio in 20 ms frames, paced by the clock (see
// pacer): never faster than real time, and a late frame moves the
// schedule instead of being followed by a catching-up burst. Audio whose
// segment became staler than the budget is dropped.
func (st *stream) play() {
	defer st.wg.Done()
	w := st.s.w
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	buf := make([]byte, 2*FrameSamples)
	var (
		cur     *segment // the segment being played
		started bool     // its first frame has left
		dropped bool     // its rest is being dropped as stale
		carry   []int16  // less than a frame, waiting for more
	)
	for {
		var p piece
		select {
		case <-st.ctx.Done():
			return
		case p = <-st.audio:
		}
		if p.seg != cur {
			cur, started, dropped, carry = p.seg, false, false, nil
			st.packetLeft = 0
		}
		st.mu.Lock()
		st.queued -= samplesDuration(int64(len(p.pcm)))
		st.mu.Unlock()
		if p.end {
			if len(carry) > 0 && !dropped {
				st.frame(buf, carry, cur, p.off-len(carry), p.total, timer, &started)
			}
			carry = nil
			if started {
				w.m.segmentsSpoken.WithLabelValues(st.lang).Inc()
			}
			continue
		}
		if !dropped && w.Budget > 0 && w.Now().Sub(cur.spoken) > w.Budget+samplesDuration(int64(p.off)) {
			// The speech of this piece should have been heard long ago.
			dropped = true
			w.m.stale.WithLabelValues(st.lang, "audio").Inc()
		}
		if dropped {
			continue
		}
		pcm := append(carry, p.pcm...)
		base := p.off - len(carry)
		carry = nil
		k := 0
		for ; k+FrameSamples <= len(pcm); k += FrameSamples {
			if !st.frame(buf, pcm[k:], cur, base+k, p.total, timer, &started) {
				return
			}
		}
		carry = append([]int16(nil), pcm[k:]...)
	}
}

// frame publishes one frame of seg's speech at its time, the first
// FrameSamples of ahead (all of it, padded with silence, when it is
// shorter: the segment's last frame); false when the stream stopped. With
// Opus, the frame that begins a packet publishes the packet, of up to
// PacketSamples of ahead (the audio in hand): each packet leaves when its
// first frame's time comes, as that frame would in PCM.
func (st *stream) frame(buf []byte, ahead []int16, seg *segment, off, total int, timer *time.Timer, started *bool) bool {
	w := st.s.w
	if !*started {
		st.pace.start(time.Now())
	}
	if d := st.pace.wait(time.Now()); d > 0 {
		timer.Reset(d)
		select {
		case <-st.ctx.Done():
			return false
		case <-timer.C:
		}
	}
	send := st.send.Load()
	if st.packetLeft == 0 && send&sendOpus != 0 {
		st.packet(ahead, seg, off, total)
	}
	st.packetLeft = max(st.packetLeft-1, 0)
	if send&sendPCM != 0 {
		clear(buf)
		PutPCM(buf, ahead[:min(FrameSamples, len(ahead))])
		if err := w.client.PublishAudioAt(st.ctx, st.s.id, st.lang, buf, sourceTime(seg, off, total)); err != nil && st.ctx.Err() == nil {
			st.log.Warn("publishing audio", logError, err)
		}
		w.m.audioBytes.WithLabelValues(st.lang, client.CodecPCM).Add(float64(len(buf)))
	}
	w.m.audio.WithLabelValues(st.lang).Add(frameDuration.Seconds())
	if !*started {
		*started = true
		late := max(w.Now().Sub(seg.spoken), 0)
		w.m.delay.WithLabelValues(st.lang).Observe(late.Seconds())
		st.status.latency(late)
	}
	st.pace.sent(time.Now())
	return true
}

// packet encodes and publishes the Opus packet that starts at off of seg's
// speech: up to PacketSamples of ahead, in whole frames, or the segment's
// last, partial frame padded with silence, stamped like the PCM frame at
// off would be.
func (st *stream) packet(ahead []int16, seg *segment, off, total int) {
	w := st.s.w
	n := min(len(ahead), opus.PacketSamples) / FrameSamples * FrameSamples
	pcm := ahead[:n]
	if n == 0 {
		pcm = st.last[:]
		clear(pcm)
		copy(pcm, ahead)
	}
	p, err := st.enc.Encode(pcm)
	if err != nil {
		st.log.Warn("encoding Opus", logError, err)
		return
	}
	st.packetLeft = len(pcm) / FrameSamples
	if err := w.client.PublishOpusAt(st.ctx, st.s.id, st.lang, p, sourceTime(seg, off, total)); err != nil && st.ctx.Err() == nil {
		st.log.Warn("publishing audio", logError, err)
	}
	w.m.audioBytes.WithLabelValues(st.lang, client.CodecOpus).Add(float64(len(p)))
}

// sourceTime stamps the frame at off of a segment's speech: mapped onto
// the source speech's span when the speech's length is known (see
// frameSourceTime), else second for second, up to the span's end.
func sourceTime(seg *segment, off, total int) time.Time {
	if total > 0 {
		return frameSourceTime(seg.start, seg.dur, off, total)
	}
	if seg.start.IsZero() {
		return seg.start
	}
	return seg.start.Add(min(samplesDuration(int64(off)), seg.dur))
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
