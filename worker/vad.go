package worker

import (
	"slices"
	"time"
)

// The noise floor is a low percentile of the energies of the last few
// seconds of frames, whatever the speech decision: a floor learnt only
// from frames already judged silent never learns steady noise above
// Threshold, which is then speech for ever (measured on the sentences of
// testdata/noise-sentences.txt in sox's white and pink noise: 0 of 12 came
// out as one utterance at 15 and 10 dB before, 12 of 12 with this; at
// 5 dB 11 and 12 of 12). Speech has gaps between words and sentences, so
// the quietest twentieth of 3 s is noise even while someone talks (and a
// tone with 100 ms gaps a second is still a tone).
const (
	noiseWindow     = 3 * time.Second
	noisePercentile = 0.05
	// Until a second of frames has been seen the floor is 0 (Threshold
	// alone decides): a floor learnt from the first few frames of a stream
	// that starts with speech is that speech, and would drop its first
	// utterance. An utterance begun then that is not above the floor
	// once learnt is dropped: it was the noise.
	noiseCalibration = time.Second
	// A frame starts speech above startRatio times the floor and keeps it
	// going above holdRatio times (hysteresis): speech at 10 dB SNR has
	// soft consonants barely above the noise. Measured: a holdRatio of 3
	// cuts sentences at 5 dB (1 of 12 whole in white noise), 1.5 lets pink
	// noise join sentences (3 of 12 whole at 15 dB).
	startRatio = 3.0
	holdRatio  = 2.0
)

// Segmenter cuts a stream of 16 kHz audio into utterances by energy: a
// 20 ms frame is voiced when its RMS is above both Threshold and a
// multiple of the noise floor (startRatio to start an utterance, the lower
// holdRatio within one). An utterance starts with a voiced frame
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
	speech  []bool    // per frame of cur: voiced
	voiced  int       // voiced frames in cur
	silent  int       // trailing unvoiced frames in cur
	active  bool
	noise   float64   // the noise floor: a low percentile of recent
	recent  []float64 // energies of the last noiseWindow of frames, a ring
	next    int       // where the next energy goes in recent
	sorted  []float64 // scratch for the percentile
	pos     int64     // samples cut into frames so far, the current frame included
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
	voiced := s.isVoiced(e, s.active)
	if s.track(e) && s.active && !s.anyVoiced() {
		// What started during calibration is not above the floor just
		// learnt: it was the noise, not speech.
		s.active, s.voiced, s.silent = false, 0, 0
		s.cur, s.energy, s.speech = s.cur[:0], s.energy[:0], s.speech[:0]
		voiced = s.isVoiced(e, false)
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
		s.cur, s.energy, s.speech = s.cur[:0], s.energy[:0], s.speech[:0]
		for _, p := range s.pre {
			s.cur = append(s.cur, p...)
			s.energy = append(s.energy, 0)
			s.speech = append(s.speech, false)
		}
		s.pre = s.pre[:0]
	}
	s.cur = append(s.cur, f...)
	s.energy = append(s.energy, e)
	s.speech = append(s.speech, voiced)
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
	s.cur, s.energy, s.speech = s.cur[:0], s.energy[:0], s.speech[:0]
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
	speech := append([]bool(nil), s.speech[cut:]...)
	s.cur, s.energy, s.speech = rest, energy, speech
	// The decisions made at the time, not again against today's floor,
	// which may have risen since.
	s.voiced = 0
	for _, v := range speech {
		if v {
			s.voiced++
		}
	}
}

// isVoiced reports whether a frame of energy e is speech, within an
// utterance (active) or to start one.
func (s *Segmenter) isVoiced(e float64, active bool) bool {
	ratio := startRatio
	if active {
		ratio = holdRatio
	}
	return e > s.Threshold && e > ratio*s.noise
}

// anyVoiced reports whether a frame of the current utterance is speech
// against the present floor.
func (s *Segmenter) anyVoiced() bool {
	for _, e := range s.energy {
		if s.isVoiced(e, false) {
			return true
		}
	}
	return false
}

// track adds a frame's energy to the recent ones and updates the floor.
// It reports whether this frame ended the calibration.
func (s *Segmenter) track(e float64) bool {
	if n := frames(noiseWindow); len(s.recent) < n {
		s.recent = append(s.recent, e)
	} else {
		s.recent[s.next] = e
		s.next = (s.next + 1) % n
	}
	if len(s.recent) < frames(noiseCalibration) {
		return false
	}
	s.sorted = append(s.sorted[:0], s.recent...)
	slices.Sort(s.sorted)
	s.noise = s.sorted[int(noisePercentile*float64(len(s.sorted)))]
	return len(s.recent) == frames(noiseCalibration) && s.next == 0
}
