//go:build cgo

package opus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/pentecost/pentecost/worker"
	"github.com/pentecost/pentecost/worker/opus"
)

// headerBytes is what the protocol adds to every audio frame on the wire:
// the binary frame's header (realtime.BinaryHeaderSize).
const headerBytes = 20

// speech is the worker's test speech (worker/testdata/script.txt, spoken
// by espeak-ng at 16 kHz, as worker/e2e_test.go speaks it): half a second
// of silence, then each sentence followed by 700 ms of silence, padded to
// whole frames. With several voices, the script once in each.
type speech struct {
	lines []string
	pcm   []int16
	spans [][2]int // each sentence's samples, [start, end)
}

func testSpeech(t testing.TB, voices ...string) speech {
	t.Helper()
	b, err := os.ReadFile("../testdata/script.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Fatal("espeak-ng is not installed: run ./scripts/test")
	}
	e := worker.NewEspeak()
	var sp speech
	sp.pcm = make([]int16, opus.SampleRate/2)
	for _, v := range voices {
		e.Voices[v] = v
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			s, err := e.Synthesize(context.Background(), l, v)
			if err != nil {
				t.Fatal(err)
			}
			sp.lines = append(sp.lines, l)
			sp.spans = append(sp.spans, [2]int{len(sp.pcm), len(sp.pcm) + len(s)})
			sp.pcm = append(sp.pcm, s...)
			sp.pcm = append(sp.pcm, make([]int16, opus.SampleRate*7/10)...)
		}
	}
	sp.pcm = append(sp.pcm, make([]int16, (opus.FrameSamples-len(sp.pcm)%opus.FrameSamples)%opus.FrameSamples)...)
	return sp
}

// speechRMS is the RMS of pcm over the sentences: the signal of an SNR.
func (sp speech) speechRMS(pcm []int16) float64 {
	var sum float64
	var n int
	for _, s := range sp.spans {
		for _, x := range pcm[s[0]:s[1]] {
			sum += float64(x) * float64(x)
			n++
		}
	}
	return math.Sqrt(sum / float64(n))
}

// withNoise returns the speech at half its level (room for the noise
// without clipping) mixed with white Gaussian noise snr dB below it, the
// same noise every run.
func (sp speech) withNoise(snr float64) []int16 {
	rng := rand.New(rand.NewPCG(14, 1))
	sigma := sp.speechRMS(sp.pcm) / 2 / math.Pow(10, snr/20)
	out := make([]int16, len(sp.pcm))
	for i, x := range sp.pcm {
		out[i] = clamp(float64(x)/2 + rng.NormFloat64()*sigma)
	}
	return out
}

func clamp(v float64) int16 {
	return int16(max(math.MinInt16, min(math.MaxInt16, math.Round(v))))
}

// recognizer returns the worker's offline recogniser as the end-to-end
// test builds it: pocketsphinx with the sermon corpus as its domain.
func recognizer(t testing.TB) worker.Recognizer {
	t.Helper()
	cfg := worker.DefaultConfig()
	cfg["pocketsphinx.corpus"] = "../testdata/sermon-corpus.txt"
	e, err := cfg.Engines(context.Background(), func(string) string { return "" })
	var me *worker.MissingError
	if errors.As(err, &me) {
		t.Fatalf("%v: run ./scripts/test, which installs the offline engines", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e.Recognizers["en"]
}

// wer recognises each sentence of pcm (cut 300 ms either side of it, in
// the pauses) and returns the word error rate of the transcripts against
// the script, and the transcripts.
func (sp speech) wer(t testing.TB, rec worker.Recognizer, pcm []int16) (float64, string) {
	t.Helper()
	var hyp []string
	margin := opus.SampleRate * 3 / 10
	for _, s := range sp.spans {
		text, err := rec.Recognize(context.Background(), pcm[max(0, s[0]-margin):min(len(pcm), s[1]+margin)], "en")
		if err != nil {
			t.Fatal(err)
		}
		hyp = append(hyp, text)
	}
	ref := worker.Words(strings.Join(sp.lines, " "))
	return wordErrorRate(ref, worker.Words(strings.Join(hyp, " "))), strings.Join(hyp, " | ")
}

// wordErrorRate is the word-level edit distance of hyp from ref over the
// length of ref.
func wordErrorRate(ref, hyp []string) float64 {
	d := make([]int, len(hyp)+1)
	for j := range d {
		d[j] = j
	}
	for i := 1; i <= len(ref); i++ {
		prev := d[0]
		d[0] = i
		for j := 1; j <= len(hyp); j++ {
			cur := d[j]
			cost := 1
			if ref[i-1] == hyp[j-1] {
				cost = 0
			}
			d[j] = min(d[j]+1, d[j-1]+1, prev+cost)
			prev = cur
		}
	}
	return float64(d[len(hyp)]) / float64(len(ref))
}

// encode encodes pcm (whole frames) at bitrate, one packet per frame.
func encode(t testing.TB, bitrate int, pcm []int16) [][]byte {
	t.Helper()
	return encodePackets(t, bitrate, opus.FrameSamples, pcm)
}

// encodePackets encodes pcm (whole frames) at bitrate in packets of size
// samples, the last one shorter if pcm ends sooner, as the worker does.
func encodePackets(t testing.TB, bitrate, size int, pcm []int16) [][]byte {
	t.Helper()
	enc, err := opus.NewEncoder(bitrate)
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

// decode decodes packets in order; a nil packet is a lost one, concealed
// with the next packet's FEC data if fec, else by PLC.
func decode(t testing.TB, packets [][]byte, fec bool) []int16 {
	t.Helper()
	dec, err := opus.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var out []int16
	for i, p := range packets {
		var pcm []int16
		if p == nil && fec && i+1 < len(packets) {
			pcm, err = dec.Conceal(packets[i+1])
		} else {
			pcm, err = dec.Decode(p)
		}
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		out = append(out, pcm...)
	}
	return out
}

// kbps is the bitrate of packets at one packet per 20 ms, with overhead
// bytes added to each.
func kbps(packets [][]byte, overhead int) float64 {
	var n int
	for _, p := range packets {
		n += len(p) + overhead
	}
	return float64(n) * 8 / (float64(len(packets)) / 50) / 1000
}

// TestEncoderOptions: a bitrate of 0 is the default, one outside libopus's
// range is refused, and a packet must be whole 20 ms frames, at most 120 ms.
func TestEncoderOptions(t *testing.T) {
	t.Run("OKDefaultBitrate", func(t *testing.T) {
		in := tone(opus.SampleRate / 2)
		a, b := encode(t, 0, in), encode(t, opus.DefaultBitrate, in)
		for i := range a {
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("packet %d at bitrate 0 differs from DefaultBitrate's", i)
			}
		}
	})
	t.Run("ErrBitrate", func(t *testing.T) {
		for _, b := range []int{-1, opus.MinBitrate - 1, opus.MaxBitrate + 1} {
			if _, err := opus.NewEncoder(b); !errors.Is(err, opus.ErrBitrate) {
				t.Errorf("NewEncoder(%d): %v, want ErrBitrate", b, err)
			}
		}
	})
	t.Run("ErrFrameSize", func(t *testing.T) {
		enc, err := opus.NewEncoder(0)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, opus.FrameSamples - 1, opus.FrameSamples + 1, opus.SampleRate / 100,
			opus.PacketSamples + 1, (opus.MaxPacketFrames + 1) * opus.FrameSamples} {
			if _, err := enc.Encode(make([]int16, n)); !errors.Is(err, opus.ErrFrameSize) {
				t.Errorf("Encode of %d samples: %v, want ErrFrameSize", n, err)
			}
		}
	})
}

// TestRoundTrip: a tone of varying loudness comes back as long as it went
// in, at the same level and pitch, in packets of a size that fits the
// bitrate.
func TestRoundTrip(t *testing.T) {
	in := tone(2 * opus.SampleRate)
	packets := encode(t, 24000, in)
	out := decode(t, packets, false)
	if len(out) != len(in) {
		t.Fatalf("decoded %d samples from %d", len(out), len(in))
	}
	// Skip the first 100 ms, where the decoder starts from silence.
	skip := opus.SampleRate / 10
	ratio := worker.RMS(out[skip:]) / worker.RMS(in[skip:])
	got := zeroCrossings(out[skip:]) / 2 / (float64(len(out)-skip) / opus.SampleRate)
	t.Logf("%d packets, %.1f kbit/s; level %.2f of the input's; %.0f Hz", len(packets), kbps(packets, 0), ratio, got)
	if ratio < 0.7 || ratio > 1.3 {
		t.Errorf("decoded level %.2f of the input's, want 0.7-1.3", ratio)
	}
	if math.Abs(got-440) > 10 {
		t.Errorf("decoded tone at %.0f Hz, want 440", got)
	}
	if r := kbps(packets, 0); r > 32 {
		t.Errorf("%.1f kbit/s at a 24 kbit/s target", r)
	}
}

// TestPacketSizes: packets of 20 to 120 ms, the 100 ms ones the worker
// sends among them, decode to exactly their length at the tone's level;
// a 100 ms packet is five 20 ms frames in one code-3 packet (RFC 6716
// section 3.2.5), as the protocol describes it; and a missing
// packet is concealed by as much audio as the last packet held, by PLC
// and with the next packet's FEC data alike.
func TestPacketSizes(t *testing.T) {
	in := tone(2 * opus.SampleRate)
	for k := 1; k <= opus.MaxPacketFrames; k++ {
		size := k * opus.FrameSamples
		t.Run(fmt.Sprintf("OK%dms", size*1000/opus.SampleRate), func(t *testing.T) {
			packets := encodePackets(t, 0, size, in[:len(in)/size*size])
			dec, err := opus.NewDecoder()
			if err != nil {
				t.Fatal(err)
			}
			var out []int16
			for i, p := range packets {
				pcm, err := dec.Decode(p)
				if err != nil || len(pcm) != size {
					t.Fatalf("packet %d (%d bytes): %d samples, %v", i, len(p), len(pcm), err)
				}
				out = append(out, pcm...)
			}
			skip := opus.SampleRate / 5
			if r := worker.RMS(out[skip:]) / worker.RMS(in[skip:len(out)]); r < 0.7 || r > 1.3 {
				t.Errorf("decoded level %.2f of the input's", r)
			}
			if k == 5 {
				for i, p := range packets {
					// TOC: mono, code 3; then the frame count: five.
					if p[0]&7 != 3 || len(p) < 2 || p[1]&0x3f != 5 {
						t.Fatalf("packet %d starts % x, want a mono code-3 packet of five frames", i, p[:min(len(p), 2)])
					}
				}
			}
			for _, next := range [][]byte{nil, packets[1]} {
				pcm, err := dec.Conceal(next)
				if err != nil || len(pcm) != size {
					t.Errorf("concealed with %d samples (next packet %v), %v, want %d", len(pcm), next != nil, err, size)
				}
			}
		})
	}
}

// TestDelay: decoded speech lines up best with the input Delay samples
// late.
func TestDelay(t *testing.T) {
	sp := testSpeech(t, "en-us")
	out := decode(t, encodePackets(t, 0, opus.PacketSamples, sp.pcm), false)
	best, bestLag := math.Inf(-1), -1
	for lag := 0; lag <= 4*opus.Delay; lag++ {
		var c float64
		for i := 0; i+lag < len(out); i++ {
			c += float64(sp.pcm[i]) * float64(out[i+lag])
		}
		if c > best {
			best, bestLag = c, lag
		}
	}
	if bestLag != opus.Delay {
		t.Errorf("decoded speech best aligned %d samples late, want %d", bestLag, opus.Delay)
	}
}

// tone returns n samples of 440 Hz, its loudness swinging three times a
// second.
func tone(n int) []int16 {
	pcm := make([]int16, n)
	for i := range pcm {
		tt := float64(i) / opus.SampleRate
		pcm[i] = clamp(8000 * (0.6 + 0.4*math.Sin(2*math.Pi*3*tt)) * math.Sin(2*math.Pi*440*tt))
	}
	return pcm
}

func zeroCrossings(pcm []int16) float64 {
	var n int
	for i := 1; i < len(pcm); i++ {
		if (pcm[i-1] < 0) != (pcm[i] < 0) {
			n++
		}
	}
	return float64(n)
}

// TestDecodeGarbage: a packet libopus cannot read is an error, and the
// decoder goes on decoding the next good one.
func TestDecodeGarbage(t *testing.T) {
	packets := encode(t, 0, make([]int16, 2*opus.FrameSamples))
	dec, err := opus.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	// TOC code 3 (an arbitrary number of frames) with no frame count.
	if pcm, err := dec.Decode([]byte{0x03}); err == nil {
		t.Errorf("decoded a truncated packet to %d samples", len(pcm))
	}
	if pcm, err := dec.Decode(packets[1]); err != nil || len(pcm) != opus.FrameSamples {
		t.Errorf("next packet: %d samples, %v", len(pcm), err)
	}
}

// TestIntelligibility measures what Opus does to recognition. The test
// script, spoken by the voice of the worker's end-to-end test (en-us) and
// by a female variant of it (en-us+f3: a higher pitch, the harder case
// for a speech codec), 70 words, is encoded at 16, 24 and 32 kbit/s,
// decoded and recognised by the offline recogniser, sentence by sentence;
// so is the PCM. Three conditions: as espeak-ng makes it ("clean", digital
// silence between words), with white noise 40 dB below the speech (a
// quiet room's microphone) and 15 dB below (a noisy one). It logs the
// bitrate produced, with and without the protocol's 20-byte frame header,
// and the word error rates, and asserts the criterion: at the
// default 24 kbit/s, no worse than the PCM by more than 0.05. Figures are
// in docs/translation.md, "Opus":
//
//	go test -v -count=1 -run TestIntelligibility ./worker/opus/
func TestIntelligibility(t *testing.T) {
	sp := testSpeech(t, "en-us", "en-us+f3")
	rec := recognizer(t)
	speaking := map[int]bool{}
	for _, s := range sp.spans {
		for i := s[0] / opus.FrameSamples; i < s[1]/opus.FrameSamples; i++ {
			speaking[i] = true
		}
	}
	var table []string
	for _, c := range []struct {
		name string
		pcm  []int16
	}{{"clean", sp.pcm}, {"white noise 40 dB SNR", sp.withNoise(40)}, {"white noise 15 dB SNR", sp.withNoise(15)}} {
		pcmWER, text := sp.wer(t, rec, c.pcm)
		t.Logf("%s, PCM: WER %.3f: %q", c.name, pcmWER, text)
		table = append(table, fmt.Sprintf("| %s | PCM | 256.0 | 264.0 | – | %.3f |", c.name, pcmWER))
		for _, bitrate := range []int{16000, 24000, 32000} {
			packets := encode(t, bitrate, c.pcm)
			decoded := decode(t, packets, false)
			if len(decoded) != len(c.pcm) {
				t.Fatalf("%d samples decoded from %d", len(decoded), len(c.pcm))
			}
			var inSpeech [][]byte
			for i, p := range packets {
				if speaking[i] {
					inSpeech = append(inSpeech, p)
				}
			}
			rate, text := sp.wer(t, rec, decoded)
			t.Logf("%s, Opus %d kbit/s: %.1f kbit/s of packets (%.1f while speaking), %.1f with the frame header; WER %.3f: %q",
				c.name, bitrate/1000, kbps(packets, 0), kbps(inSpeech, 0), kbps(packets, headerBytes), rate, text)
			table = append(table, fmt.Sprintf("| %s | Opus %d | %.1f | %.1f | %.1f | %.3f |",
				c.name, bitrate/1000, kbps(packets, 0), kbps(packets, headerBytes), kbps(inSpeech, 0), rate))
			if bitrate == opus.DefaultBitrate && rate > pcmWER+0.05 {
				t.Errorf("%s: WER %.3f at %d kbit/s, PCM %.3f: worse by more than 0.05", c.name, rate, bitrate/1000, pcmWER)
			}
		}
	}
	t.Logf("%d words, %.1f s of audio\n"+
		"| audio | format | kbit/s (packets) | kbit/s with 20-byte header | kbit/s while speaking | WER |\n"+
		"|---|---|---|---|---|---|\n%s",
		len(worker.Words(strings.Join(sp.lines, " "))), float64(len(sp.pcm))/opus.SampleRate, strings.Join(table, "\n"))
}

// TestPacketLoss drops every tenth packet of the test speech at the default
// bitrate and decodes the rest, concealing each missing packet by PLC or
// by the next packet's FEC data. The output is exactly as long as the
// input. A lost packet in the middle of speech (speech in it and in the
// frame before) is not concealed by silence (a tenth of the lossless
// decoding's level): never with FEC; with PLC at most one in ten times,
// since PLC extrapolates from the frame before and fades when that was a
// transient (measured: 1 of 37). It logs how close the concealed frames
// come to the lost packets' audio, and the word error rate.
func TestPacketLoss(t *testing.T) {
	sp := testSpeech(t, "en-us")
	packets := encode(t, 0, sp.pcm)
	lossless := decode(t, packets, false)
	lost := make([][]byte, len(packets))
	for i, p := range packets {
		if i%10 != 9 {
			lost[i] = p
		}
	}
	rec := recognizer(t)
	losslessWER, _ := sp.wer(t, rec, lossless)
	frame := func(pcm []int16, k int) []int16 { return pcm[k*opus.FrameSamples : (k+1)*opus.FrameSamples] }
	for _, c := range []struct {
		name      string
		fec       bool
		maxSilent float64
	}{{"PLC", false, 0.1}, {"FEC", true, 0}} {
		t.Run(c.name, func(t *testing.T) {
			out := decode(t, lost, c.fec)
			if len(out) != len(sp.pcm) {
				t.Fatalf("%d samples decoded from %d with every tenth packet lost", len(out), len(sp.pcm))
			}
			var sig, noise float64
			var checked int
			var silent []int
			for i := 9; i < len(packets); i += 10 {
				if worker.RMS(frame(sp.pcm, i)) < 500 || worker.RMS(frame(sp.pcm, i-1)) < 500 {
					continue
				}
				checked++
				got, want := frame(out, i), frame(lossless, i)
				if worker.RMS(got) < 0.1*worker.RMS(want) {
					silent = append(silent, i)
				}
				for k := range got {
					d := float64(got[k]) - float64(want[k])
					sig += float64(want[k]) * float64(want[k])
					noise += d * d
				}
			}
			rate, text := sp.wer(t, rec, out)
			t.Logf("%d lost packets in speech, %d concealed by near silence %v; concealed frames %.1f dB SNR against the lost packets' audio; WER %.3f (%.3f without loss): %q",
				checked, len(silent), silent, 10*math.Log10(sig/noise), rate, losslessWER, text)
			if checked < 20 {
				t.Fatalf("only %d lost packets in speech: the test speech is too short", checked)
			}
			if float64(len(silent)) > c.maxSilent*float64(checked) {
				t.Errorf("%d of %d lost packets in speech concealed by near silence: %v", len(silent), checked, silent)
			}
		})
	}
}

// BenchmarkEncode: the cost of encoding speech at the default bitrate and
// complexity, per packet of 20 ms and of 100 ms (the worker's).
func BenchmarkEncode(b *testing.B) {
	sp := testSpeech(b, "en-us")
	for _, size := range []int{opus.FrameSamples, opus.PacketSamples} {
		b.Run(fmt.Sprintf("%dms", size*1000/opus.SampleRate), func(b *testing.B) {
			enc, err := opus.NewEncoder(0)
			if err != nil {
				b.Fatal(err)
			}
			n := len(sp.pcm) / size
			b.ResetTimer()
			for i := range b.N {
				k := i % n
				if _, err := enc.Encode(sp.pcm[k*size : (k+1)*size]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode: the cost of decoding one packet of speech.
func BenchmarkDecode(b *testing.B) {
	sp := testSpeech(b, "en-us")
	packets := encode(b, 0, sp.pcm)
	dec, err := opus.NewDecoder()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := dec.Decode(packets[i%len(packets)]); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecode: any bytes, as a packet or as the packet after a lost one,
// decode or fail without harm: at most 120 ms of audio in whole 2.5 ms
// steps, a concealment as long as the last packet decoded, and the decoder
// still decodes the next good packet. Its corpus, in testdata/fuzz, holds
// packets of speech and of silence from the Encoder.
func FuzzDecode(f *testing.F) {
	enc, err := opus.NewEncoder(0)
	if err != nil {
		f.Fatal(err)
	}
	good, err := enc.Encode(make([]int16, opus.FrameSamples))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, packet []byte) {
		dec, err := opus.NewDecoder()
		if err != nil {
			t.Fatal(err)
		}
		last := opus.FrameSamples
		if pcm, err := dec.Decode(packet); err == nil {
			if len(pcm) > opus.SampleRate*120/1000 || len(pcm)%(opus.SampleRate/400) != 0 {
				t.Fatalf("decoded to %d samples", len(pcm))
			}
			if len(pcm) > 0 {
				last = len(pcm)
			}
		}
		if pcm, err := dec.Conceal(packet); err == nil && len(pcm) != last {
			t.Fatalf("concealed with %d samples after a packet of %d", len(pcm), last)
		}
		if pcm, err := dec.Decode(good); err != nil || len(pcm) != opus.FrameSamples {
			t.Fatalf("next good packet: %d samples, %v", len(pcm), err)
		}
	})
}
