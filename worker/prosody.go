package worker

import (
	"math"
)

// prosodyMeter measures how the speaker said each segment against how
// they usually speak: loudness (dB of the voiced frames) and speaking rate
// (syllable nuclei, counted as peaks of the energy envelope, per second of
// voiced audio; words per second when the audio has too few peaks), each
// against a running mean over the previous segments. The first segment
// has no mean to compare with and is left unknown (zero Prosody). It is
// owned by one goroutine.
type prosodyMeter struct {
	level, rate float64 // running means; 0: none yet
	words       float64 // running mean of words per second
}

// prosodyWeight is how much a new segment moves the running means: about
// the last ten segments count.
const prosodyWeight = 0.1

// measure returns the prosody of pcm, in which words words were heard.
func (m *prosodyMeter) measure(pcm []int16, words int) Prosody {
	const frame = SampleRate / 100 // 10 ms
	if len(pcm) < 10*frame {
		return Prosody{}
	}
	env := make([]float64, 0, len(pcm)/frame)
	for off := 0; off+frame <= len(pcm); off += frame {
		env = append(env, RMS(pcm[off:off+frame]))
	}
	peak := 0.0
	for _, e := range env {
		peak = max(peak, e)
	}
	if peak < 100 { // below about -50 dBFS: silence
		return Prosody{}
	}
	// Voiced frames: within 25 dB of the segment's loudest.
	var sum float64
	voiced := 0
	for _, e := range env {
		if e > peak/18 {
			sum += e * e
			voiced++
		}
	}
	level := 10 * math.Log10(sum/float64(voiced))
	secs := float64(voiced) / 100
	// Syllable nuclei: peaks of the envelope smoothed over 50 ms that rise
	// 3 dB above the valley before them.
	smooth := make([]float64, len(env))
	for i := range env {
		var s float64
		n := 0
		for k := max(i-2, 0); k <= min(i+2, len(env)-1); k++ {
			s += env[k]
			n++
		}
		smooth[i] = s / float64(n)
	}
	peaks, valley := 0, smooth[0]
	for i := 1; i+1 < len(smooth); i++ {
		valley = min(valley, smooth[i])
		if smooth[i] >= smooth[i-1] && smooth[i] > smooth[i+1] && smooth[i] > peak/18 && smooth[i] > valley*1.41 {
			peaks++
			valley = smooth[i]
		}
	}
	var p Prosody
	if peaks >= 3 && secs > 0 {
		r := float64(peaks) / secs
		if m.rate > 0 {
			p.Rate = clampF(r/m.rate, 0.5, 2)
		}
		m.rate = mean(m.rate, r)
	} else if words > 0 && secs > 0 {
		r := float64(words) / secs
		if m.words > 0 {
			p.Rate = clampF(r/m.words, 0.5, 2)
		}
		m.words = mean(m.words, r)
	}
	if m.level != 0 {
		p.Loudness = clampF(level-m.level, -12, 12)
	}
	m.level = mean(m.level, level)
	return p
}

func mean(avg, x float64) float64 {
	if avg == 0 {
		return x
	}
	return avg + prosodyWeight*(x-avg)
}

func clampF(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }
