package worker_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker"
)

// talk is speech made of sentences with pauses between them, and where
// each sentence's sound is.
type talk struct {
	lines []string
	pcm   []int16
	spans [][2]int // first and last sample above the noise gate, per sentence
}

// noiseSentences speaks testdata/noise-sentences.txt: half a second of
// silence, then each sentence in its own voice and rate, with pauses of
// 0.7 to 1.1 s between them (speakers do not pause evenly). The level is
// halved so that noise can be added without clipping.
func noiseSentences(t testing.TB) talk {
	t.Helper()
	b, err := os.ReadFile("testdata/noise-sentences.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Fatal("espeak-ng is not installed: run ./scripts/test")
	}
	var tk talk
	tk.pcm = make([]int16, worker.SampleRate/2)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, "|", 3)
		if len(f) != 3 {
			t.Fatalf("noise-sentences.txt: bad line %q", line)
		}
		rate, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("noise-sentences.txt: bad rate in %q", line)
		}
		e := worker.NewEspeak()
		e.Voices["en"], e.Speed = f[0], rate
		s, err := e.Synthesize(context.Background(), f[2], "en")
		if err != nil {
			t.Fatal(err)
		}
		first, last := -1, 0
		for i, x := range s {
			if x > 300 || x < -300 {
				if first < 0 {
					first = i
				}
				last = i
			}
		}
		for i := range s {
			s[i] /= 2
		}
		tk.lines = append(tk.lines, f[2])
		tk.spans = append(tk.spans, [2]int{len(tk.pcm) + first, len(tk.pcm) + last})
		tk.pcm = append(tk.pcm, s...)
		pause := 700 + 100*(len(tk.lines)%5)
		tk.pcm = append(tk.pcm, make([]int16, worker.SampleRate*pause/1000)...)
	}
	return tk
}

// speechRMS is the RMS of the sentences' sound, the signal of the SNR.
func (tk talk) speechRMS() float64 {
	var sum float64
	var n int
	for _, sp := range tk.spans {
		for _, x := range tk.pcm[sp[0] : sp[1]+1] {
			sum += float64(x) * float64(x)
			n++
		}
	}
	return math.Sqrt(sum / float64(n))
}

// withNoise returns the talk mixed by sox with white or pink noise at snr
// dB below the speech (sox -R: the same noise every run).
func (tk talk) withNoise(t testing.TB, kind string, snr float64) []int16 {
	t.Helper()
	if _, err := exec.LookPath("sox"); err != nil {
		t.Fatal("sox is not installed: run ./scripts/test")
	}
	dir := t.TempDir()
	speech, noise, mixed := filepath.Join(dir, "speech.wav"), filepath.Join(dir, "noise.wav"), filepath.Join(dir, "mixed.wav")
	if err := os.WriteFile(speech, worker.EncodeWAV(tk.pcm, worker.SampleRate), 0o644); err != nil {
		t.Fatal(err)
	}
	dur := fmt.Sprintf("%.3f", float64(len(tk.pcm))/worker.SampleRate)
	sox(t, "-R", "-n", "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", noise, "synth", dur, kind, "vol", "0.25")
	b, err := os.ReadFile(noise)
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := worker.DecodeWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	gain := tk.speechRMS() / worker.RMS(n) / math.Pow(10, snr/20)
	sox(t, "-m", "-v", "1", speech, "-v", fmt.Sprintf("%.5f", gain), noise, "-b", "16", mixed)
	if b, err = os.ReadFile(mixed); err != nil {
		t.Fatal(err)
	}
	pcm, _, err := worker.DecodeWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	return pcm
}

func sox(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("sox", args...).CombinedOutput(); err != nil {
		t.Fatalf("sox %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// whole counts the sentences that come out as one utterance each: exactly
// one utterance overlaps the sentence, it overlaps no other sentence, and
// it holds at least 90% of the sentence's sound.
func (tk talk) whole(us []worker.Utterance) (n int, report []string) {
	for i, sp := range tk.spans {
		var hits []int
		for j, u := range us {
			if overlapSamples(u, sp) > 0 {
				hits = append(hits, j)
			}
		}
		ok := len(hits) == 1
		var cover float64
		if ok {
			u := us[hits[0]]
			cover = float64(overlapSamples(u, sp)) / float64(sp[1]-sp[0]+1)
			for k, other := range tk.spans {
				if k != i && overlapSamples(u, other) > 0 {
					ok = false
				}
			}
			ok = ok && cover >= 0.9
		}
		if ok {
			n++
		}
		report = append(report, fmt.Sprintf("%d:%d utt/%.0f%%", i+1, len(hits), 100*cover))
	}
	return n, report
}

func overlapSamples(u worker.Utterance, span [2]int) int {
	a, b := max(int(u.Offset), span[0]), min(int(u.Offset)+len(u.PCM)-1, span[1])
	return max(0, b-a+1)
}

// TestNoiseSegmentation: in steady white or pink noise down to 10 dB SNR,
// the voice detector still cuts at least 80% of sentences it was not tuned
// on as one utterance each, and ends each within a second of its end.
func TestNoiseSegmentation(t *testing.T) {
	tk := noiseSentences(t)
	for _, c := range []struct {
		noise string
		snr   float64
	}{{"", 0}, {"whitenoise", 15}, {"pinknoise", 15}, {"whitenoise", 10}, {"pinknoise", 10}} {
		name := "OKClean"
		if c.noise != "" {
			name = fmt.Sprintf("OK%s%.0fdB", c.noise, c.snr)
		}
		t.Run(name, func(t *testing.T) {
			pcm := tk.pcm
			if c.noise != "" {
				pcm = tk.withNoise(t, c.noise, c.snr)
			}
			us := segments(worker.NewSegmenter(), pcm)
			n, report := tk.whole(us)
			share := float64(n) / float64(len(tk.lines))
			t.Logf("%d of %d sentences as one utterance (%.0f%%), %d utterances: %s", n, len(tk.lines), 100*share, len(us), strings.Join(report, " "))
			if share < 0.8 {
				t.Errorf("%.0f%% of sentences as one utterance, want at least 80%%", 100*share)
			}
			// Each sentence's utterance ends soon after the sentence: the
			// hangover, not the noise, decides.
			var late []string
			for _, u := range us {
				end := int(u.Offset) + len(u.PCM)
				for _, sp := range tk.spans {
					if overlapSamples(u, sp) > 0 && end > sp[1] && time.Duration(end-sp[1])*time.Second/worker.SampleRate > time.Second {
						late = append(late, fmt.Sprintf("%v", time.Duration(end-sp[1])*time.Second/worker.SampleRate))
					}
				}
			}
			if len(late) > len(tk.lines)/5 {
				t.Errorf("utterances end late after their sentence: %v", late)
			}
		})
	}
}

// BenchmarkOfflineChain measures the offline engines, English to Spanish,
// through a real server on the speech of testdata/noise-sentences.txt,
// clean and in white noise at 10 dB, with the sermon corpus as the
// recogniser's (related, not matching) domain model and with Debian's
// general model: the word error rate of the English captions and the mean
// delay from the end of a sentence to its first Spanish audio frame. It
// reports figures; the targets are in docs/translation.md. Run it alone
// (it streams about a minute of speech per case in real time):
//
//	go test -run '^$' -bench OfflineChain -benchtime 1x ./worker/
func BenchmarkOfflineChain(b *testing.B) {
	tk := noiseSentences(b)
	for _, model := range []string{"corpus", "general"} {
		for _, noise := range []string{"clean", "white10dB"} {
			b.Run(model+"/"+noise, func(b *testing.B) {
				pcm := tk.pcm
				if noise != "clean" {
					pcm = tk.withNoise(b, "whitenoise", 10)
				}
				cfg := worker.DefaultConfig()
				if model == "corpus" {
					cfg["pocketsphinx.corpus"] = "testdata/sermon-corpus.txt"
				}
				engines, err := cfg.Engines(context.Background(), func(string) string { return "" })
				requirePackages(b, err)
				b.Cleanup(func() { _ = engines.Close() })
				for range b.N {
					e := newEnv(b)
					id := e.createSession()
					spk := e.speaker(id)
					es := e.listen(id, "es")
					en := e.listen(id, "en")
					_, reg := e.startWorker(engines)
					poll(b, 5*time.Second, "Spanish to become available", es.isAvailable)
					load0, _ := os.ReadFile("/proc/loadavg")
					stream(b, spk, pcm)
					// Every utterance cut is recognised, and every
					// transcript is spoken in Spanish or counted as failed
					// or stale (noise makes a few of those), and the audio
					// published has arrived.
					es1 := map[string]string{"language": "es"}
					poll(b, 120*time.Second, "every utterance to reach Spanish listeners", func() bool {
						cut := metric(b, reg, "pentecost_worker_segments_total", nil)
						recognised := metric(b, reg, "pentecost_worker_stage_seconds", map[string]string{"stage": "recognize"})
						n := metric(b, reg, "pentecost_worker_utterances_total", map[string]string{"language": "en"})
						done := metric(b, reg, "pentecost_worker_segments_spoken_total", es1) +
							metric(b, reg, "pentecost_worker_engine_errors_total", es1) + metric(b, reg, "pentecost_worker_stale_total", es1)
						return cut > 0 && recognised == cut && done >= n &&
							float64(es.samples())+0.5 >= metric(b, reg, "pentecost_worker_audio_seconds_total", es1)*worker.SampleRate // a sum of float seconds: not exact
					})
					load1, _ := os.ReadFile("/proc/loadavg")
					source := en.finals()
					rate := wer(words(tk.lines), words(source))
					delay := histogramMean(b, reg, "pentecost_worker_delay_seconds", map[string]string{"language": "es"})
					b.ReportMetric(rate, "WER")
					b.ReportMetric(delay, "delay-s")
					b.Logf("%s, %s: WER %.2f over %d words; %d utterances; mean delay sentence end → Spanish audio %.2f s; load average %s → %s",
						model, noise, rate, len(words(tk.lines)), len(source), delay, strings.Fields(string(load0))[0], strings.Fields(string(load1))[0])
					for _, s := range []struct{ stage, lang string }{{"recognize", "en"}, {"translate", "es"}, {"synthesize", "es"}} {
						b.Logf("mean %s (%s): %.3f s", s.stage, s.lang, histogramMean(b, reg, "pentecost_worker_stage_seconds", map[string]string{"stage": s.stage, "language": s.lang}))
					}
					b.Logf("recognised: %q", strings.Join(source, " | "))
					b.Logf("spanish:    %q", strings.Join(es.finals(), " | "))
				}
			})
		}
	}
}
