package web_test

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/pion/opus"
)

// The Opus fixture (web/testdata/opus, written by web/e2e/opus-fixture.mjs):
// what Chromium's WebCodecs AudioEncoder made of input.wav, 3 s of 16 kHz
// mono tone bursts, a sweep and speech, in two encodings. docs/opus.md
// draws its conclusions from it.
const (
	opusFixtureDir  = "testdata/opus"
	opusRate        = 16000
	opusFrame       = opusRate / 50 // samples in 20 ms
	opusFixtureSize = 151           // packets: 150 input frames and the encoder's lookahead
)

// opusEncoding is one encoding's entry in fixture.json.
type opusEncoding struct {
	EncoderConfig struct {
		SampleRate int `json:"sampleRate"`
		Bitrate    int `json:"bitrate"`
		Opus       struct {
			Application   string `json:"application"`
			FrameDuration int    `json:"frameDuration"`
		} `json:"opus"`
	} `json:"encoderConfig"`
	DecoderConfig struct {
		SampleRate  int    `json:"sampleRate"`
		Channels    int    `json:"numberOfChannels"`
		Description string `json:"description"` // hex
	} `json:"decoderConfig"`
	Packets int `json:"packets"`
	Bytes   int `json:"bytes"`
}

type opusFixture struct {
	input     []int16
	encodings map[string]opusEncoding
	packets   map[string][][]byte
}

func loadOpusFixture(t testing.TB) *opusFixture {
	t.Helper()
	var meta struct {
		Encodings map[string]opusEncoding `json:"encodings"`
	}
	b, err := os.ReadFile(filepath.Join(opusFixtureDir, "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatalf("fixture.json: %v", err)
	}
	f := &opusFixture{encodings: meta.Encodings, packets: map[string][][]byte{}}
	if f.input, err = readWAV16(filepath.Join(opusFixtureDir, "input.wav")); err != nil {
		t.Fatal(err)
	}
	for name := range meta.Encodings {
		b, err := os.ReadFile(filepath.Join(opusFixtureDir, name+".bin"))
		if err != nil {
			t.Fatal(err)
		}
		if f.packets[name], err = splitPackets(b); err != nil {
			t.Fatalf("%s.bin: %v", name, err)
		}
	}
	return f
}

// splitPackets reads the fixture's packet files: per packet, its length
// as uint16 little-endian, then its bytes.
func splitPackets(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%d stray bytes at the end", len(b))
		}
		n := int(binary.LittleEndian.Uint16(b))
		if n == 0 || 2+n > len(b) {
			return nil, fmt.Errorf("packet %d: length %d with %d bytes left", len(out), n, len(b)-2)
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out, nil
}

// readWAV16 reads the samples of a 16 kHz mono 16-bit WAV file with the
// plain 44-byte header web/e2e/lib.mjs writes.
func readWAV16(path string) ([]int16, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 44 || string(b[:4]) != "RIFF" || string(b[36:40]) != "data" ||
		binary.LittleEndian.Uint16(b[22:]) != 1 || binary.LittleEndian.Uint32(b[24:]) != opusRate || binary.LittleEndian.Uint16(b[34:]) != 16 {
		return nil, fmt.Errorf("%s: not a 16 kHz mono 16-bit WAV file", path)
	}
	data := b[44:]
	if n := int(binary.LittleEndian.Uint32(b[40:])); n <= len(data) {
		data = data[:n]
	}
	out := make([]int16, len(data)/2)
	for i := range out {
		out[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
	}
	return out, nil
}

// opusTOC is an Opus packet's first byte (RFC 6716 section 3.1).
type opusTOC byte

func (t opusTOC) config() int  { return int(t >> 3) }
func (t opusTOC) stereo() bool { return t&4 != 0 }
func (t opusTOC) code() int    { return int(t & 3) } // frames in the packet: 0 means one

// mode is the TOC's mode and bandwidth, as RFC 6716 table 2 names them.
func (t opusTOC) mode() string {
	c := t.config()
	switch {
	case c < 12:
		return "SILK " + [...]string{"NB", "MB", "WB"}[c/4]
	case c < 16:
		return "hybrid " + [...]string{"SWB", "FB"}[(c-12)/2]
	default:
		return "CELT " + [...]string{"NB", "WB", "SWB", "FB"}[(c-16)/4]
	}
}

// frameMicros is the duration of each frame in the packet.
func (t opusTOC) frameMicros() int {
	c := t.config()
	switch {
	case c < 12:
		return []int{10000, 20000, 40000, 60000}[c%4]
	case c < 16:
		return []int{10000, 20000}[c%2]
	default:
		return []int{2500, 5000, 10000, 20000}[c%4]
	}
}

// opusHead is the identification header of RFC 7845 section 5.1, which
// WebCodecs passes as the decoder configuration's description.
type opusHead struct {
	Version, Channels  int
	PreSkip            int
	InputRate          int
	OutputGain, Family int
}

func parseOpusHead(b []byte) (opusHead, error) {
	if len(b) < 19 || string(b[:8]) != "OpusHead" {
		return opusHead{}, fmt.Errorf("not an OpusHead: %x", b)
	}
	return opusHead{
		Version:    int(b[8]),
		Channels:   int(b[9]),
		PreSkip:    int(binary.LittleEndian.Uint16(b[10:])),
		InputRate:  int(binary.LittleEndian.Uint32(b[12:])),
		OutputGain: int(int16(binary.LittleEndian.Uint16(b[16:]))),
		Family:     int(b[18]),
	}, nil
}

// TestOpusFixture checks what docs/opus.md says Chromium's encoder
// produces: with application "voip" at 24 kbit/s from 16 kHz input, one
// 20 ms SILK wideband frame per packet, mono, a 16 kHz clock, within the
// bit rate; with the default application, SILK and CELT wideband mixed.
func TestOpusFixture(t *testing.T) {
	f := loadOpusFixture(t)
	if len(f.input) != 3*opusRate {
		t.Fatalf("input.wav: %d samples, want %d", len(f.input), 3*opusRate)
	}
	for _, tt := range []struct {
		name        string
		application string
		modes       map[int]string // TOC configurations allowed, all of which must occur
	}{
		{"voip", "voip", map[int]string{9: "SILK WB"}},
		{"audio", "audio", map[int]string{9: "SILK WB", 23: "CELT WB"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			enc, packets := f.encodings[tt.name], f.packets[tt.name]
			if len(packets) != opusFixtureSize || enc.Packets != len(packets) {
				t.Fatalf("%d packets (fixture.json: %d), want %d", len(packets), enc.Packets, opusFixtureSize)
			}
			if o := enc.EncoderConfig.Opus; o.Application != tt.application || o.FrameDuration != 20000 || enc.EncoderConfig.Bitrate != 24000 {
				t.Errorf("encoded with application %q, %d µs frames, %d bit/s; want %q, 20000 µs, 24000 bit/s",
					o.Application, o.FrameDuration, enc.EncoderConfig.Bitrate, tt.application)
			}
			if enc.EncoderConfig.SampleRate != opusRate || enc.DecoderConfig.SampleRate != opusRate || enc.DecoderConfig.Channels != 1 {
				t.Errorf("encoder at %d Hz, decoder config %d Hz × %d channels; want 16 kHz mono throughout",
					enc.EncoderConfig.SampleRate, enc.DecoderConfig.SampleRate, enc.DecoderConfig.Channels)
			}
			desc, err := hex.DecodeString(enc.DecoderConfig.Description)
			if err != nil {
				t.Fatal(err)
			}
			head, err := parseOpusHead(desc)
			if err != nil {
				t.Fatal(err)
			}
			// Chromium's pre-skip is the encoder's lookahead at its own
			// 16 kHz clock (2.5 ms + 4 ms), not at 48 kHz as RFC 7845 says.
			if want := (opusHead{Version: 1, Channels: 1, PreSkip: 104, InputRate: opusRate}); head != want {
				t.Errorf("OpusHead %+v, want %+v", head, want)
			}
			seen := map[int]int{}
			total := 0
			for i, p := range packets {
				toc := opusTOC(p[0])
				if _, ok := tt.modes[toc.config()]; !ok || toc.stereo() || toc.code() != 0 || toc.frameMicros() != 20000 {
					t.Fatalf("packet %d: TOC %#02x is configuration %d (%s, %d µs), stereo %v, code %d",
						i, p[0], toc.config(), toc.mode(), toc.frameMicros(), toc.stereo(), toc.code())
				}
				if got := toc.mode(); got != tt.modes[toc.config()] {
					t.Fatalf("configuration %d read as %s", toc.config(), got)
				}
				seen[toc.config()]++
				total += len(p)
			}
			for c, m := range tt.modes {
				if seen[c] == 0 {
					t.Errorf("no packet in configuration %d (%s)", c, m)
				}
			}
			if total != enc.Bytes {
				t.Errorf("%d bytes of packets, fixture.json says %d", total, enc.Bytes)
			}
			kbps := float64(total*8) / (float64(len(packets)) * 0.020) / 1000
			t.Logf("%s: %d packets, %v, %.1f kbit/s", tt.name, len(packets), seen, kbps)
			if kbps > float64(enc.EncoderConfig.Bitrate)/1000 {
				t.Errorf("%.1f kbit/s, above the %d bit/s asked for", kbps, enc.EncoderConfig.Bitrate)
			}
		})
	}
}

// TestOpusPionDecode decodes the fixture with github.com/pion/opus, the
// pure-Go decoder the server would use where it needs PCM of an Opus
// stream (recognition, PCM listeners), and compares the result with the
// input: every packet gives 20 ms, and after the encoder's lookahead (the
// 104 samples of OpusHead's pre-skip) the waveform and its loudness
// envelope follow the input's. TestBrowserOpus compares the same decode
// with libopus's, sample by sample.
func TestOpusPionDecode(t *testing.T) {
	f := loadOpusFixture(t)
	in := make([]float32, len(f.input))
	for i, v := range f.input {
		in[i] = float32(v) / 32768
	}
	for _, tt := range []struct {
		name   string
		minSNR float64 // dB; measured 10.7 (voip) and 20.8 (audio)
	}{
		// SILK at 24 kbit/s keeps speech, not the waveform of tones and
		// sweeps: voip's high-pass and noise shaping cost the most.
		{"voip", 9},
		{"audio", 18},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := pionDecode(t, f.packets[tt.name], opusRate)
			if len(out) != len(f.packets[tt.name])*opusFrame {
				t.Fatalf("%d samples from %d packets", len(out), len(f.packets[tt.name]))
			}
			lag, snr := alignedSNR(in, out, 400)
			env := envelopeCorrelation(in, out[lag:])
			t.Logf("%s: %d samples, delay %d samples, SNR %.1f dB, envelope correlation %.4f", tt.name, len(out), lag, snr, env)
			if lag != 104 {
				t.Errorf("output delayed by %d samples, want the encoder's 104", lag)
			}
			if snr < tt.minSNR || env < 0.98 {
				t.Errorf("SNR %.1f dB, envelope correlation %.4f; want at least %.0f dB and 0.98", snr, env, tt.minSNR)
			}
		})
	}
}

// BenchmarkOpusPionDecode measures pion/opus's cost per 20 ms packet of
// the voip fixture decoded at 16 kHz, the cost of one Opus stream the
// server decodes.
func BenchmarkOpusPionDecode(b *testing.B) {
	f := loadOpusFixture(b)
	packets := f.packets["voip"]
	d, err := opus.NewDecoderWithOutput(opusRate, 1)
	if err != nil {
		b.Fatal(err)
	}
	out := make([]float32, 5760)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := d.DecodeToFloat32(packets[i%len(packets)], out); err != nil {
			b.Fatal(err)
		}
	}
}

// pionDecode decodes packets to mono floats at rate, checking that each
// gives 20 ms.
func pionDecode(t testing.TB, packets [][]byte, rate int) []float32 {
	t.Helper()
	d, err := opus.NewDecoderWithOutput(rate, 1)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 0, len(packets)*rate/50)
	buf := make([]float32, 5760)
	for i, p := range packets {
		n, err := d.DecodeToFloat32(p, buf)
		if err != nil {
			t.Fatalf("packet %d (TOC %#02x): %v", i, p[0], err)
		}
		if n != rate/50 {
			t.Fatalf("packet %d gave %d samples at %d Hz, want 20 ms", i, n, rate)
		}
		out = append(out, buf[:n]...)
	}
	return out
}

// alignedSNR finds the delay (0..maxLag samples) at which out best matches
// in and returns it with the signal-to-noise ratio there, in dB.
func alignedSNR(in, out []float32, maxLag int) (lag int, snr float64) {
	best := math.Inf(-1)
	for l := 0; l <= maxLag && l < len(out); l++ {
		var sig, noise float64
		for i := 0; i < len(in) && i+l < len(out); i++ {
			s, e := float64(in[i]), float64(out[i+l])-float64(in[i])
			sig += s * s
			noise += e * e
		}
		if v := 10 * math.Log10(sig/math.Max(noise, 1e-20)); v > best {
			best, lag = v, l
		}
	}
	return lag, best
}

// envelopeCorrelation is the Pearson correlation of the RMS of each
// 20 ms frame of a and b, over the frames both have.
func envelopeCorrelation(a, b []float32) float64 {
	ea, eb := rmsEnvelope(a), rmsEnvelope(b)
	n := min(len(ea), len(eb))
	var ma, mb float64
	for i := range n {
		ma += ea[i]
		mb += eb[i]
	}
	ma /= float64(n)
	mb /= float64(n)
	var num, da, db float64
	for i := range n {
		num += (ea[i] - ma) * (eb[i] - mb)
		da += (ea[i] - ma) * (ea[i] - ma)
		db += (eb[i] - mb) * (eb[i] - mb)
	}
	return num / math.Sqrt(da*db)
}

func rmsEnvelope(s []float32) []float64 {
	var out []float64
	for i := 0; i+opusFrame <= len(s); i += opusFrame {
		var sum float64
		for _, v := range s[i : i+opusFrame] {
			sum += float64(v) * float64(v)
		}
		out = append(out, math.Sqrt(sum/opusFrame))
	}
	return out
}
