package worker

import "time"

// Segmenter cuts a stream of 16 kHz audio into utterances by energy: a
// 20 ms frame is voiced when its RMS is above both Threshold and three
// times the tracked noise floor. An utterance starts with a voiced frame
// (plus PreRoll of the audio before it, so the first consonant is kept)
// and ends after Hangover of unvoiced frames, so the pauses inside and
// between words do not cut it. One longer than MaxUtterance is cut at its
// quietest frame in the last second, so a long sentence still flows.
// Create it with NewSegmenter; it is not safe for concurrent use.
type Segmenter struct {
	// Threshold is the least RMS (int16 scale) of a voiced frame; 300 is
	// about -40 dBFS.
	Threshold float64
	// Hangover is the silence that ends an utterance.
	Hangover time.Duration
	// PreRoll is the audio kept before the first voiced frame.
	PreRoll time.Duration
	// MinSpeech is the least voiced audio an utterance needs; shorter
	// bursts (clicks, coughs) are dropped.
	MinSpeech time.Duration
	// MaxUtterance bounds an utterance's length.
	MaxUtterance time.Duration

	pending []int16   // less than a frame
	pre     [][]int16 // recent unvoiced frames, before an utterance
	cur     []int16
	energy  []float64 // per frame of cur
	voiced  int       // voiced frames in cur
	silent  int       // trailing unvoiced frames in cur
	active  bool
	noise   float64
	pos     int64 // samples cut into frames so far, the current frame included
}

// NewSegmenter returns a Segmenter with a 400 ms hangover, 200 ms pre-roll,
// 150 ms minimum speech and 12 s maximum utterance.
func NewSegmenter() *Segmenter {
	return &Segmenter{Threshold: 300, Hangover: 400 * time.Millisecond, PreRoll: 200 * time.Millisecond,
		MinSpeech: 150 * time.Millisecond, MaxUtterance: 12 * time.Second}
}

// Utterance is a stretch of speech cut by a Segmenter.
type Utterance struct {
	// PCM is the speech, 16 kHz mono.
	PCM []int16
	// Trailing is how long after the last voiced frame the utterance was
	// closed (the hangover): the speaker stopped that long ago.
	Trailing time.Duration
	// Offset is where PCM starts in everything written to the Segmenter,
	// in samples: with the times the audio was captured, it places the
	// utterance in time (see timeline).
	Offset int64
}

func frames(d time.Duration) int { return int(d / (20 * time.Millisecond)) }

// Write feeds samples and calls emit for every utterance they complete.
func (s *Segmenter) Write(pcm []int16, emit func(Utterance)) {
	s.pending = append(s.pending, pcm...)
	for len(s.pending) >= FrameSamples {
		f := append([]int16(nil), s.pending[:FrameSamples]...)
		s.pending = s.pending[FrameSamples:]
		s.frame(f, emit)
	}
	s.pending = append([]int16(nil), s.pending...)
}

// Flush ends the utterance in progress, if any (the stream stopped).
func (s *Segmenter) Flush(emit func(Utterance)) {
	if s.active {
		s.end(len(s.energy)-s.silent, emit)
	}
}

func (s *Segmenter) frame(f []int16, emit func(Utterance)) {
	s.pos += int64(len(f))
	e := RMS(f)
	voiced := e > s.Threshold && e > 3*s.noise
	if !voiced {
		// The floor follows quiet frames slowly, so speech does not raise it.
		s.noise = 0.95*s.noise + 0.05*e
	}
	if !s.active {
		if !voiced {
			s.pre = append(s.pre, f)
			if n := frames(s.PreRoll); len(s.pre) > n {
				s.pre = s.pre[len(s.pre)-n:]
			}
			return
		}
		s.active, s.voiced, s.silent = true, 0, 0
		s.cur, s.energy = s.cur[:0], s.energy[:0]
		for _, p := range s.pre {
			s.cur = append(s.cur, p...)
			s.energy = append(s.energy, 0)
		}
		s.pre = s.pre[:0]
	}
	s.cur = append(s.cur, f...)
	s.energy = append(s.energy, e)
	if voiced {
		s.voiced++
		s.silent = 0
	} else {
		s.silent++
	}
	switch {
	case s.silent >= max(frames(s.Hangover), 1):
		s.end(len(s.energy)-s.silent, emit)
	case len(s.energy) >= frames(s.MaxUtterance):
		s.split(emit)
	}
}

// end emits cur up to frame n (plus a little of the silence after it) and
// goes back to waiting for speech.
func (s *Segmenter) end(n int, emit func(Utterance)) {
	keep := min(len(s.energy), n+frames(100*time.Millisecond))
	trailing := time.Duration(len(s.energy)-n) * 20 * time.Millisecond
	if s.voiced >= frames(s.MinSpeech) {
		emit(Utterance{PCM: append([]int16(nil), s.cur[:keep*FrameSamples]...), Trailing: trailing, Offset: s.pos - int64(len(s.cur))})
	}
	s.active, s.voiced, s.silent = false, 0, 0
	s.cur, s.energy = s.cur[:0], s.energy[:0]
}

// split emits an over-long utterance up to its quietest frame in the last
// second and keeps the rest as the start of the next.
func (s *Segmenter) split(emit func(Utterance)) {
	cut := len(s.energy) - 1
	for i := len(s.energy) - 1; i >= max(len(s.energy)-frames(time.Second), 1); i-- {
		if s.energy[i] < s.energy[cut] {
			cut = i
		}
	}
	emit(Utterance{PCM: append([]int16(nil), s.cur[:cut*FrameSamples]...), Offset: s.pos - int64(len(s.cur))})
	rest := append([]int16(nil), s.cur[cut*FrameSamples:]...)
	energy := append([]float64(nil), s.energy[cut:]...)
	s.cur, s.energy = rest, energy
	s.voiced = 0
	for _, e := range energy {
		if e > s.Threshold && e > 3*s.noise {
			s.voiced++
		}
	}
}
