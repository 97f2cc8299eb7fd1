//go:build cgo

package worker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
// the offline recogniser sentence by sentence, as is the PCM. Opus may be
// worse than the PCM by at most 0.05 word error rate. It logs both word
// error rates, and what PCM, 100 ms and 20 ms packets cost per listener on
// the wire (20 ms packets decode to the same audio: libopus codes a 100 ms
// packet as five 20 ms frames). Figures are in docs/translation.md, "Opus":
//
//	go test -v -count=1 -run TestOpusIntelligibility ./worker/
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
	// score recognises each sentence, cut 300 ms either side of its sound.
	score := func(pcm []int16) (float64, string) {
		margin := worker.SampleRate * 3 / 10
		var hyp []string
		for _, sp := range tk.spans {
			text, err := rec.Recognize(context.Background(), pcm[max(0, sp[0]-margin):min(len(pcm), sp[1]+margin)], "en")
			if err != nil {
				t.Fatal(err)
			}
			hyp = append(hyp, text)
		}
		return wer(ref, words(hyp)), strings.Join(hyp, " | ")
	}
	seconds := func(pcm []int16) float64 { return float64(len(pcm)) / worker.SampleRate }
	table := []string{"| audio | format | kbit/s of audio | with 20-byte frame headers | with WebSocket headers too | WER |", "|---|---|---|---|---|---|"}
	for _, c := range []struct {
		name  string
		noise string
		snr   float64
	}{{"white noise 40 dB SNR", "whitenoise", 40}, {"pink noise 15 dB SNR", "pinknoise", 15}, {"white noise 10 dB SNR", "whitenoise", 10}} {
		pcm := tk.withNoise(t, c.noise, c.snr)
		pcm = append(pcm, make([]int16, (opus.FrameSamples-len(pcm)%opus.FrameSamples)%opus.FrameSamples)...)
		pcmWER, text := score(pcm)
		t.Logf("%s, PCM: WER %.3f: %q", c.name, pcmWER, text)
		// PCM as listeners get it: the speaker's 100 ms chunks (3,200 bytes).
		chunk := 2 * worker.SampleRate / 10
		n := float64(len(pcm)) / float64(worker.SampleRate/10)
		audio := 2 * float64(len(pcm))
		table = append(table, fmt.Sprintf("| %s | PCM, 100 ms chunks | %.1f | %.1f | %.1f | %.3f |", c.name,
			kbit(audio, seconds(pcm)), kbit(audio+n*frameHeader, seconds(pcm)), kbit(audio+n*float64(frameHeader+wsHeader(chunk+frameHeader)), seconds(pcm)), pcmWER))
		for _, size := range []int{opus.PacketSamples, opus.FrameSamples} {
			packets := encodeOpus(t, size, pcm)
			var bytes, framed, wire float64
			for _, p := range packets {
				bytes += float64(len(p))
				framed += float64(len(p) + frameHeader)
				wire += float64(len(p) + frameHeader + wsHeader(len(p)+frameHeader))
			}
			format := fmt.Sprintf("Opus %d, %d ms packets", opus.DefaultBitrate/1000, size*1000/worker.SampleRate)
			if size != opus.PacketSamples {
				t.Logf("%s, %s: %.1f kbit/s of packets, %.1f with frame headers, %.1f with WebSocket headers",
					c.name, format, kbit(bytes, seconds(pcm)), kbit(framed, seconds(pcm)), kbit(wire, seconds(pcm)))
				table = append(table, fmt.Sprintf("| | %s | %.1f | %.1f | %.1f | as 100 ms |", format,
					kbit(bytes, seconds(pcm)), kbit(framed, seconds(pcm)), kbit(wire, seconds(pcm))))
				continue
			}
			for _, d := range []string{"libopus", "pion/opus"} {
				var out []int16
				if d == "libopus" {
					out = decodeLibopus(t, packets)
				} else {
					out = decodePion(t, packets)
				}
				if len(out) != len(pcm) {
					t.Fatalf("%s decoded %d samples of %d", d, len(out), len(pcm))
				}
				// Line the decoded audio up with the PCM: the recogniser
				// hears a few milliseconds' shift as a different input
				// (moving the PCM by 5 ms changed its WER by 0.05-0.08).
				out = append(out[opus.Delay:], make([]int16, opus.Delay)...)
				rate, text := score(out)
				format := format + ", decoded by " + d
				t.Logf("%s, %s: %.1f kbit/s of packets, %.1f with frame headers, %.1f with WebSocket headers; WER %.3f: %q",
					c.name, format, kbit(bytes, seconds(pcm)), kbit(framed, seconds(pcm)), kbit(wire, seconds(pcm)), rate, text)
				table = append(table, fmt.Sprintf("| | %s | %.1f | %.1f | %.1f | %.3f |", format,
					kbit(bytes, seconds(pcm)), kbit(framed, seconds(pcm)), kbit(wire, seconds(pcm)), rate))
				if rate > pcmWER+0.05 {
					t.Errorf("%s, %s: WER %.3f, PCM %.3f: worse by more than 0.05", c.name, format, rate, pcmWER)
				}
			}
		}
	}
	t.Logf("%d sentences, %d words, %.1f s of audio\n%s", len(tk.lines), len(ref), seconds(tk.pcm), strings.Join(table, "\n"))
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
