package realtime

import (
	"encoding/binary"
	"math"
	"time"
)

// Speaker-audio checks: on the speaker's PCM (pcm_s16le_16000_mono) the
// server measures each second of audio and warns the speaker's page when
// the microphone clips, stays silent while the session is live, or is
// very quiet during speech. It runs on the speaker's reader goroutine for
// every chunk, once per speaker (never per listener): one pass over the
// samples adding squares and counting full-scale ones, and a few float
// operations once a second (BenchmarkAudioCheck: ~0.42 µs per 640-byte,
// 20 ms chunk on a shared 2-core VM, up to 0.9 µs under load 9: about
// 21 µs of CPU per second of speech, per speaker).

// Audio warnings (audioWarning.warning).
const (
	warnClipping = "clipping"
	warnSilence  = "silence"
	warnLowLevel = "lowLevel"
)

const (
	checkRate       = 16000 // samples per second of pcm_s16le_16000_mono
	checkWindow     = checkRate
	clipLevel       = 32767 * 99 / 100 // |x| at or above this is clipped
	clipStartShare  = 0.001            // warn above 0.1 % clipped samples in a window
	clipClearShare  = 0.0002           // ... clear after clipClearWindows windows under 0.02 %
	clipClearWindow = 3
	silenceDBFS     = -55.0 // a window quieter than this is silence
	silenceClearDB  = -50.0 // ... and silence ends at a window this loud
	lowWindows      = 5     // low level looks at the last 5 s
	lowSpeechMin    = 3     // ... of which at least 3 windows must hold sound
	lowDBFS         = -40.0 // warn when the loudest window of those is below this
	lowClearDBFS    = -37.0 // ... and clear at a window this loud

	// DefaultSilenceWarning is Server.SilenceWarning's default.
	DefaultSilenceWarning = 10 * time.Second
)

// checkAudio runs the speaker-audio checks on a chunk (or, held, notes
// that audio does not go out) and tells the speaker of warnings that
// start or end.
func (s *Server) checkAudio(c *conn, data []byte, held bool) {
	if c.audio == nil {
		c.audio = newAudioCheck(s.SilenceWarning)
	}
	var evs []audioEvent
	if held {
		evs = c.audio.held()
	} else {
		evs = c.audio.add(data)
	}
	for _, ev := range evs {
		o := obj{"type": "audioWarning", "sessionId": c.sessionID(), "warning": ev.warning, "value": ev.value}
		if ev.cleared {
			o = obj{"type": "audioWarningCleared", "sessionId": c.sessionID(), "warning": ev.warning}
		}
		c.send(o)
	}
}

// audioEvent is a warning starting (cleared false) or ending.
type audioEvent struct {
	warning string
	value   float64
	cleared bool
}

// audioCheck measures one speaker connection's audio. Only the connection's
// reader goroutine uses it.
type audioCheck struct {
	silenceAfter int // samples of silence before warning; 0: never

	// The window being measured.
	n       int
	sumSq   uint64
	clipped int

	// State across windows.
	active    [3]bool // clipping, silence, lowLevel
	clipQuiet int     // windows under clipClearShare since clipping began
	silent    int     // samples of silence so far
	levels    [lowWindows]float64
	levelsN   int
	levelsAt  int
	out       []audioEvent
}

func newAudioCheck(silenceAfter time.Duration) *audioCheck {
	return &audioCheck{silenceAfter: int(silenceAfter.Seconds() * checkRate)}
}

// add measures a chunk of s16le samples and returns warnings that start or
// end with it (valid until the next call). A trailing odd byte is ignored.
func (a *audioCheck) add(pcm []byte) []audioEvent {
	a.out = a.out[:0]
	for len(pcm) >= 2 {
		k := min(len(pcm)/2, checkWindow-a.n)
		sum, clipped := sumSquares(pcm[:2*k])
		a.sumSq += sum
		a.clipped += clipped
		a.n += k
		pcm = pcm[2*k:]
		if a.n == checkWindow {
			a.window()
		}
	}
	return a.out
}

// sumSquares returns the sum of the squares of s16le samples and how many
// are at full scale; p holds at most a window, so the sum fits an int64
// (clipped is rare, so its branch is predicted).
func sumSquares(p []byte) (sum uint64, clipped int) {
	n := len(p) / 2
	var s int64
	for i := 0; i < n; i++ {
		x := int64(int16(binary.LittleEndian.Uint16(p[2*i:])))
		s += x * x
		if x >= clipLevel || x <= -clipLevel {
			clipped++
		}
	}
	return uint64(s), clipped
}

// held tells the check that audio is not going out (paused, muted): the
// silence count starts again, and a silence warning ends.
func (a *audioCheck) held() []audioEvent {
	a.out = a.out[:0]
	a.silent = 0
	a.set(1, warnSilence, false, 0)
	return a.out
}

func (a *audioCheck) set(i int, warning string, on bool, value float64) {
	if a.active[i] == on {
		return
	}
	a.active[i] = on
	a.out = append(a.out, audioEvent{warning: warning, value: value, cleared: !on})
}

// window judges a whole second.
func (a *audioCheck) window() {
	rms := math.Sqrt(float64(a.sumSq) / float64(a.n))
	db := -120.0
	if rms > 0 {
		db = 20 * math.Log10(rms/32768)
	}
	share := float64(a.clipped) / float64(a.n)
	n := a.n
	a.n, a.sumSq, a.clipped = 0, 0, 0

	switch {
	case share > clipStartShare:
		a.clipQuiet = 0
		a.set(0, warnClipping, true, math.Round(share*1000)/10) // percent, one decimal
	case a.active[0] && share <= clipClearShare:
		a.clipQuiet++
		if a.clipQuiet >= clipClearWindow {
			a.set(0, warnClipping, false, 0)
		}
	}

	if db < silenceDBFS {
		a.silent += n
		if a.silenceAfter > 0 && a.silent >= a.silenceAfter {
			a.set(1, warnSilence, true, float64(a.silent/checkRate))
		}
	} else if db >= silenceClearDB || !a.active[1] {
		a.silent = 0
		a.set(1, warnSilence, false, 0)
	}

	a.levels[a.levelsAt] = db
	a.levelsAt = (a.levelsAt + 1) % lowWindows
	a.levelsN = min(a.levelsN+1, lowWindows)
	if db >= lowClearDBFS {
		a.set(2, warnLowLevel, false, 0)
	}
	if a.levelsN == lowWindows && !a.active[2] {
		sound, peak := 0, -120.0
		for _, l := range a.levels {
			if l >= silenceDBFS {
				sound++
			}
			peak = max(peak, l)
		}
		if sound >= lowSpeechMin && peak < lowDBFS {
			a.set(2, warnLowLevel, true, math.Round(peak))
		}
	}
}
