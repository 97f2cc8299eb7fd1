//go:build cgo

package worker_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	pionopus "github.com/pion/opus"

	"github.com/pentecost/pentecost/worker"
	"github.com/pentecost/pentecost/worker/opus"
)

// Bytes each audio frame costs on the wire besides its audio: the binary
// frame's header (docs/protocol.md, section 3.1), and the WebSocket
// frame's own header of a server message (RFC 6455 section 5.2: unmasked,
// 2 bytes up to 125 bytes of payload, 4 up to 65,535).
const frameHeader = 20

func wsHeader(payload int) int {
	if payload <= 125 {
		return 2
	}
	return 4
}

// TestOpusIntelligibility is the quality gate of the worker's Opus: the
// sentences of testdata/noise-sentences.txt (which no setting of the codec
// or the recogniser was tuned on; twelve voices and rates), in white and
// pink noise, encoded as the worker encodes its speech (100 ms packets at
// DefaultBitrate), decoded by libopus (as browsers decode) and by
// pion/opus (as the Go client and the server decode), are recognised by
// the offline recogniser sentence by sentence, as is the PCM. In each
// condition, over three noises of its kind and level, Opus may recognise
// worse than the PCM by at most 0.05 word error rate. It logs the word
// error rates, and what PCM, 100 ms and 20 ms packets cost per listener on
// the wire (20 ms packets decode to the same audio: libopus codes a 100 ms
// packet as five 20 ms frames). Figures are in docs/translation.md, "Opus":
//
//	go test -v -count=1 -run TestOpusIntelligibility ./worker/
//
// Why three noises: with one, the recogniser's word error rate on these
// 174 words moved by 5 points either way from one noise to another of the
// same kind and level, PCM against Opus, as much as the margin tested.
func TestOpusIntelligibility(t *testing.T) {
	tk := noiseSentences(t)
	// The recogniser's domain model covers the talk, as a deployment's
	// corpus of the talk's subject would (TestIntelligibility in
	// worker/opus does the same with the sermon corpus and its script):
	// with the sermon corpus alone it gets nine words in ten of these
	// sentences wrong, PCM and Opus alike, and measures nothing.
	sermon, err := os.ReadFile("testdata/sermon-corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	corpus := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(corpus, []byte(string(sermon)+strings.Join(tk.lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := worker.DefaultConfig()
	cfg["pocketsphinx.corpus"] = corpus
	engines, err := cfg.Engines(context.Background(), func(string) string { return "" })
	requirePackages(t, err)
	t.Cleanup(func() { _ = engines.Close() })
	rec := engines.Recognizers["en"]
	ref := words(tk.lines)
	seconds := float64(len(tk.pcm)) / worker.SampleRate
	const seeds = 3
	type job struct {
		cond, seed int
		format     string
		pcm        []int16
		wer        float64
		text       string
		err        error
	}
	var jobs []*job
	conds := []struct {
		name  string
		noise string
		snr   float64
	}{{"white noise 40 dB SNR", "white", 40}, {"pink noise 15 dB SNR", "pink", 15}, {"white noise 10 dB SNR", "white", 10}}
	// Bytes on the wire per condition: PCM's, then 100 ms and 20 ms
	// packets' (audio, with frame headers, with WebSocket headers too).
	wire := make([][3][3]float64, len(conds))
	for ci, c := range conds {
		for seed := range seeds {
			pcm := tk.seededNoise(c.noise, c.snr, uint64(seed))
			pcm = append(pcm, make([]int16, (opus.FrameSamples-len(pcm)%opus.FrameSamples)%opus.FrameSamples)...)
			jobs = append(jobs, &job{cond: ci, seed: seed, format: "PCM", pcm: pcm})
			chunk := 2 * worker.SampleRate / 10 // PCM as listeners get it: 100 ms chunks
			n := float64(len(pcm)) / float64(worker.SampleRate/10)
			audio := 2 * float64(len(pcm))
			wire[ci][0][0] += audio / seeds
			wire[ci][0][1] += (audio + n*frameHeader) / seeds
			wire[ci][0][2] += (audio + n*float64(frameHeader+wsHeader(chunk+frameHeader))) / seeds
			for k, size := range []int{opus.PacketSamples, opus.FrameSamples} {
				packets := encodeOpus(t, size, pcm)
				for _, p := range packets {
					wire[ci][k+1][0] += float64(len(p)) / seeds
					wire[ci][k+1][1] += float64(len(p)+frameHeader) / seeds
					wire[ci][k+1][2] += float64(len(p)+frameHeader+wsHeader(len(p)+frameHeader)) / seeds
				}
				if size != opus.PacketSamples {
					continue
				}
				for _, out := range []struct {
					name string
					pcm  []int16
				}{{"libopus", decodeLibopus(t, packets)}, {"pion/opus", decodePion(t, packets)}} {
					if len(out.pcm) != len(pcm) {
						t.Fatalf("%s decoded %d samples of %d", out.name, len(out.pcm), len(pcm))
					}
					// Line the decoded audio up with the PCM: the
					// recogniser hears a few milliseconds' shift as a
					// different input (moving the PCM by 5 ms changed its
					// WER by 0.05-0.08).
					aligned := append(out.pcm[opus.Delay:], make([]int16, opus.Delay)...)
					jobs = append(jobs, &job{cond: ci, seed: seed, format: out.name, pcm: aligned})
				}
			}
		}
	}
	// Recognise, two recognisers at a time (they are processes).
	var wg sync.WaitGroup
	queue := make(chan *job)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				margin := worker.SampleRate * 3 / 10
				var hyp []string
				for _, sp := range tk.spans {
					text, err := rec.Recognize(context.Background(), j.pcm[max(0, sp[0]-margin):min(len(j.pcm), sp[1]+margin)], "en")
					if err != nil {
						j.err = err
						break
					}
					hyp = append(hyp, text)
				}
				j.wer, j.text = wer(ref, words(hyp)), strings.Join(hyp, " | ")
			}
		}()
	}
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	wg.Wait()
	mean := map[[2]any]float64{}
	for _, j := range jobs {
		if j.err != nil {
			t.Fatal(j.err)
		}
		t.Logf("%s, noise %d, %s: WER %.3f: %q", conds[j.cond].name, j.seed, j.format, j.wer, j.text)
		mean[[2]any{j.cond, j.format}] += j.wer / seeds
	}
	kb := func(b float64) float64 { return b * 8 / seconds / 1000 }
	table := []string{"| audio | format | kbit/s of audio | with 20-byte frame headers | with WebSocket headers too | WER (mean of 3 noises) |", "|---|---|---|---|---|---|"}
	for ci, c := range conds {
		pcmWER := mean[[2]any{ci, "PCM"}]
		w := wire[ci]
		table = append(table, fmt.Sprintf("| %s | PCM, 100 ms chunks | %.1f | %.1f | %.1f | %.3f |", c.name, kb(w[0][0]), kb(w[0][1]), kb(w[0][2]), pcmWER))
		for _, d := range []string{"libopus", "pion/opus"} {
			rate := mean[[2]any{ci, d}]
			format := fmt.Sprintf("Opus %d, 100 ms packets, decoded by %s", opus.DefaultBitrate/1000, d)
			table = append(table, fmt.Sprintf("| | %s | %.1f | %.1f | %.1f | %.3f |", format, kb(w[1][0]), kb(w[1][1]), kb(w[1][2]), rate))
			if rate > pcmWER+0.05 {
				t.Errorf("%s, %s: WER %.3f, PCM %.3f: worse by more than 0.05", c.name, format, rate, pcmWER)
			}
		}
		table = append(table, fmt.Sprintf("| | Opus %d, 20 ms packets | %.1f | %.1f | %.1f | as 100 ms |", opus.DefaultBitrate/1000, kb(w[2][0]), kb(w[2][1]), kb(w[2][2])))
	}
	t.Logf("%d sentences, %d words, %.1f s of audio\n%s", len(tk.lines), len(ref), seconds, strings.Join(table, "\n"))
}

// seededNoise returns the talk mixed with white or pink noise snr dB below
// its speech, the same noise every run for a seed: the recogniser's word
// error rate moves by several points from one noise to another of the
// same kind and level, so a noise that changed with every run (sox's
// synth does, even with -R) would make the test pass or fail by chance. Pink noise is white noise through Paul Kellet's
// three-pole filter (within 0.5 dB of 1/f above 10 Hz at 16 kHz).
func (tk talk) seededNoise(kind string, snr float64, seed uint64) []int16 {
	rng := rand.New(rand.NewPCG(14, seed))
	noise := make([]float64, len(tk.pcm))
	var b0, b1, b2, sum float64
	for i := range noise {
		w := rng.NormFloat64()
		if kind == "pink" {
			b0 = 0.99765*b0 + w*0.0990460
			b1 = 0.96300*b1 + w*0.2965164
			b2 = 0.57000*b2 + w*1.0526913
			w = b0 + b1 + b2 + w*0.1848
		}
		noise[i] = w
		sum += w * w
	}
	gain := tk.speechRMS() / math.Sqrt(sum/float64(len(noise))) / math.Pow(10, snr/20)
	out := make([]int16, len(tk.pcm))
	for i, x := range tk.pcm {
		out[i] = int16(max(math.MinInt16, min(math.MaxInt16, math.Round(float64(x)+gain*noise[i]))))
	}
	return out
}

func kbit(bytes, seconds float64) float64 { return bytes * 8 / seconds / 1000 }

// encodeOpus encodes pcm (whole 20 ms frames) at the default bitrate in
// packets of size samples, the last one shorter where pcm ends sooner.
func encodeOpus(t testing.TB, size int, pcm []int16) [][]byte {
	t.Helper()
	enc, err := opus.NewEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	var packets [][]byte
	for i := 0; i < len(pcm); i += size {
		p, err := enc.Encode(pcm[i:min(i+size, len(pcm))])
		if err != nil {
			t.Fatal(err)
		}
		packets = append(packets, p)
	}
	return packets
}

func decodeLibopus(t testing.TB, packets [][]byte) []int16 {
	t.Helper()
	dec, err := opus.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var out []int16
	for i, p := range packets {
		pcm, err := dec.Decode(p)
		if err != nil {
			t.Fatalf("libopus, packet %d: %v", i, err)
		}
		out = append(out, pcm...)
	}
	return out
}

func decodePion(t testing.TB, packets [][]byte) []int16 {
	t.Helper()
	dec, err := pionopus.NewDecoderWithOutput(worker.SampleRate, 1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]int16, worker.SampleRate*120/1000)
	var out []int16
	for i, p := range packets {
		n, err := dec.DecodeToInt16(p, buf)
		if err != nil {
			t.Fatalf("pion/opus, packet %d: %v", i, err)
		}
		out = append(out, buf[:n]...)
	}
	return out
}
