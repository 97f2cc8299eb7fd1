package worker_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker"
)

// noise returns d of white noise of about the given RMS.
func noise(d time.Duration, rms float64, r *rand.Rand) []int16 {
	out := make([]int16, int(d.Seconds()*worker.SampleRate))
	for i := range out {
		out[i] = int16(max(-32768, min(32767, r.NormFloat64()*rms)))
	}
	return out
}

// TestSegmenterNoiseFloor: the floor follows the noise whatever the speech
// decision, so steady noise well above Threshold is not speech for ever.
func TestSegmenterNoiseFloor(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	t.Run("OKNoiseStepUp", func(t *testing.T) {
		// Quiet, then noise at 5 times Threshold that starts at 2 s and
		// stays: at most one utterance while the floor learns it, and
		// that one closed within the floor's window and a hangover.
		pcm := append(silence(2*time.Second), noise(20*time.Second, 1500, r)...)
		us := segments(worker.NewSegmenter(), pcm)
		if len(us) > 1 {
			t.Fatalf("%d utterances in steady noise, want at most 1", len(us))
		}
		for _, u := range us {
			if end := time.Duration(int(u.Offset)+len(u.PCM)) * time.Second / worker.SampleRate; end > 6*time.Second {
				t.Errorf("noise taken for speech until %v, want the floor learnt by 6 s", end)
			}
		}
	})
	t.Run("OKSpeechInNoise", func(t *testing.T) {
		// Noise first (the floor calibrates on it), then two tone "words"
		// 10 dB above it with a pause between: two utterances.
		tone := func(d time.Duration) []int16 {
			w := sine(300, int(d.Seconds()*16000), 16000)
			n := noise(d, 1000, r)
			for i := range w {
				w[i] = int16(float64(w[i])*0.4472) + n[i] // RMS 3162
			}
			return w
		}
		var pcm []int16
		for _, p := range [][]int16{noise(3*time.Second, 1000, r), tone(time.Second), noise(time.Second, 1000, r), tone(time.Second), noise(2*time.Second, 1000, r)} {
			pcm = append(pcm, p...)
		}
		us := segments(worker.NewSegmenter(), pcm)
		if len(us) != 2 {
			t.Fatalf("%d utterances, want 2", len(us))
		}
		for i, u := range us {
			if d := time.Duration(len(u.PCM)) * time.Second / worker.SampleRate; d < time.Second || d > 1500*time.Millisecond {
				t.Errorf("utterance %d lasts %v, want the word's second plus pre-roll and a little", i, d)
			}
		}
	})
	t.Run("OKStreamStartsWithSpeech", func(t *testing.T) {
		// Speech from the first sample: the floor is not learnt from it,
		// so the first word is kept.
		var pcm []int16
		for range 3 {
			pcm = append(pcm, sine(440, 9600, 16000)...)
			pcm = append(pcm, silence(700*time.Millisecond)...)
		}
		us := segments(worker.NewSegmenter(), pcm)
		if len(us) != 3 {
			t.Fatalf("%d utterances, want 3", len(us))
		}
		if us[0].Offset != 0 {
			t.Errorf("first utterance at sample %d, want 0", us[0].Offset)
		}
	})
}
