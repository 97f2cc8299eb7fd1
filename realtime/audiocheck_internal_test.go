package realtime

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// pcmSecond makes one second of s16le audio: a 440 Hz tone of peak amp
// (0 gives silence) with clip samples set to full scale.
func pcmSecond(amp float64, clip int) []byte {
	b := make([]byte, 2*checkRate)
	for i := 0; i < checkRate; i++ {
		v := int16(amp * math.Sin(2*math.Pi*440*float64(i)/checkRate))
		if i < clip {
			v = 32767
		}
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

// dBFS gives the peak amplitude of a sine whose RMS is db dBFS.
func dBFS(db float64) float64 { return 32768 * math.Pow(10, db/20) * math.Sqrt2 }

type step struct {
	pcm  []byte
	held bool
	want []audioEvent // events this second
}

func runSteps(t *testing.T, a *audioCheck, steps []step) {
	t.Helper()
	for i, st := range steps {
		var got []audioEvent
		if st.held {
			got = append(got, a.held()...)
		} else {
			// In 20 ms chunks, as a client sends them.
			for p := st.pcm; len(p) > 0; p = p[min(len(p), 640):] {
				got = append(got, a.add(p[:min(len(p), 640)])...)
			}
		}
		if len(got) != len(st.want) {
			t.Fatalf("second %d: events %+v, want %+v", i, got, st.want)
		}
		for j := range got {
			g, w := got[j], st.want[j]
			if g.warning != w.warning || g.cleared != w.cleared || (!w.cleared && w.value != 0 && g.value != w.value) {
				t.Fatalf("second %d: event %+v, want %+v", i, g, w)
			}
		}
	}
}

func TestAudioCheck(t *testing.T) {
	speech := pcmSecond(dBFS(-20), 0)
	quiet := pcmSecond(dBFS(-48), 0)
	silence := pcmSecond(0, 0)
	clipping := pcmSecond(dBFS(-6), 160) // 1 % of samples at full scale
	start := func(w string, v float64) []audioEvent { return []audioEvent{{warning: w, value: v}} }
	clear := func(w string) []audioEvent { return []audioEvent{{warning: w, cleared: true}} }
	repeat := func(n int, s step) []step {
		out := make([]step, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}

	t.Run("NormalSpeechNoWarning", func(t *testing.T) {
		a := newAudioCheck(10 * time.Second)
		// Speech with natural pauses of 2 s and noise at -70 dBFS.
		noise := make([]byte, 2*checkRate)
		r := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < checkRate; i++ {
			binary.LittleEndian.PutUint16(noise[2*i:], uint16(int16(r.NormFloat64()*10)))
		}
		var steps []step
		for i := 0; i < 30; i++ {
			steps = append(steps, step{pcm: speech}, step{pcm: speech}, step{pcm: noise}, step{pcm: noise})
		}
		runSteps(t, a, steps)
	})
	t.Run("Clipping", func(t *testing.T) {
		a := newAudioCheck(10 * time.Second)
		// 1 % clipped: warned at once; one clean second is not enough to
		// clear it (no flapping), three are.
		runSteps(t, a, cat(
			[]step{{pcm: speech}, {pcm: clipping, want: start(warnClipping, 1)}, {pcm: speech}, {pcm: clipping}},
			repeat(2, step{pcm: speech}),
			[]step{{pcm: speech, want: clear(warnClipping)}},
			// A single clipped sample in a second is below 0.1 %.
			[]step{{pcm: pcmSecond(dBFS(-6), 1)}},
		))
	})
	t.Run("Silence", func(t *testing.T) {
		a := newAudioCheck(10 * time.Second)
		runSteps(t, a, cat(
			[]step{{pcm: speech}},
			repeat(9, step{pcm: silence}),
			[]step{{pcm: silence, want: start(warnSilence, 10)}},
			repeat(5, step{pcm: silence}), // no repeat
			[]step{{pcm: speech, want: clear(warnSilence)}},
			repeat(9, step{pcm: silence}),
			// Pausing clears it and starts the count again.
			[]step{{pcm: silence, want: start(warnSilence, 10)}, {held: true, want: clear(warnSilence)}},
			repeat(9, step{pcm: silence}),
			[]step{{pcm: silence, want: start(warnSilence, 10)}},
		))
	})
	t.Run("SilenceOff", func(t *testing.T) {
		runSteps(t, newAudioCheck(0), repeat(20, step{pcm: silence}))
	})
	t.Run("LowLevel", func(t *testing.T) {
		a := newAudioCheck(10 * time.Second)
		runSteps(t, a, cat(
			repeat(4, step{pcm: quiet}),
			[]step{{pcm: quiet, want: start(warnLowLevel, -48)}},
			repeat(3, step{pcm: quiet}),
			// -39 dBFS is still within the hysteresis: no change.
			[]step{{pcm: pcmSecond(dBFS(-39), 0)}},
			[]step{{pcm: speech, want: clear(warnLowLevel)}},
			repeat(5, step{pcm: speech}),
		))
	})
	t.Run("QuietRoomIsNotLowLevel", func(t *testing.T) {
		// Silence (below -55 dBFS) is not quiet speech.
		runSteps(t, newAudioCheck(0), repeat(10, step{pcm: pcmSecond(dBFS(-60), 0)}))
	})
}

// BenchmarkAudioCheck measures the checks' cost per 640-byte (20 ms)
// speaker chunk, the hot path's unit.
func BenchmarkAudioCheck(b *testing.B) {
	a := newAudioCheck(10 * time.Second)
	pcm := pcmSecond(dBFS(-20), 0)[:640]
	b.SetBytes(640)
	for b.Loop() {
		a.add(pcm)
	}
}
