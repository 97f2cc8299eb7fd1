package opuspcm_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"testing"
	"time"

	"github.com/pentecost/pentecost/opuspcm"
)

// chromiumPackets reads the packets Chromium's WebCodecs encoder made of
// the test tone and speech (web/testdata/opus, written by
// web/e2e/opus-fixture.mjs): per packet, a uint16 LE length, then bytes.
func chromiumPackets(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile("../web/testdata/opus/voip.bin")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for len(b) >= 2 {
		n := int(binary.LittleEndian.Uint16(b))
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	if len(out) < 100 {
		t.Fatalf("only %d packets in the fixture", len(out))
	}
	return out
}

func TestDuration(t *testing.T) {
	t.Run("Chromium", func(t *testing.T) {
		for i, p := range chromiumPackets(t) {
			d, err := opuspcm.Duration(p)
			if err != nil || d != 20*time.Millisecond {
				t.Fatalf("packet %d (TOC %#02x): %v, %v; want 20ms", i, p[0], d, err)
			}
		}
	})
	ok := []struct {
		name string
		p    []byte
		want time.Duration
	}{
		{"TOCOnly", []byte{0x08}, 20 * time.Millisecond},                  // SILK NB 20 ms, empty frame (DTX)
		{"CELT2.5ms", []byte{16 << 3, 1, 2}, 2500 * time.Microsecond},     // config 16
		{"Code1", []byte{0x08 | 1, 1, 2}, 40 * time.Millisecond},          // two frames of 1 byte
		{"Code2", []byte{0x08 | 2, 1, 9, 8, 7}, 40 * time.Millisecond},    // 1 byte, then 2
		{"Code3CBR", []byte{0x08 | 3, 3, 1, 2, 3}, 60 * time.Millisecond}, // 3 × 1 byte
		{"Code3VBR", []byte{0x08 | 3, 0x80 | 2, 1, 5, 6, 7}, 40 * time.Millisecond},
		{"Code3Padded", []byte{0x08 | 3, 0x40 | 1, 2, 5, 0, 0}, 20 * time.Millisecond},
		{"Code3SixSILK20", []byte{0x08 | 3, 6}, 120 * time.Millisecond},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			d, err := opuspcm.Duration(tt.p)
			if err != nil || d != tt.want {
				t.Fatalf("got %v, %v; want %v", d, err, tt.want)
			}
		})
	}
	bad := []struct {
		name string
		p    []byte
	}{
		{"R1Empty", nil},
		{"R2FrameTooLong", append([]byte{0x08}, make([]byte, 1276)...)},
		{"R3Code1Odd", []byte{0x08 | 1, 1, 2, 3}},
		{"R4Code2LengthPastEnd", []byte{0x08 | 2, 5, 1}},
		{"R4Code2NoLength", []byte{0x08 | 2}},
		{"R5Code3NoCount", []byte{0x08 | 3}},
		{"R5Code3ZeroFrames", []byte{0x08 | 3, 0}},
		{"R5Code3Over120ms", []byte{0x08 | 3, 7}},
		{"R6CBRUneven", []byte{0x08 | 3, 2, 1, 2, 3}},
		{"R6PaddingPastEnd", []byte{0x08 | 3, 0x40 | 1, 9}},
		{"R6PaddingUnterminated", []byte{0x08 | 3, 0x40 | 1, 255}},
		{"R7VBRLengthsPastEnd", []byte{0x08 | 3, 0x80 | 3, 4, 4, 1}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if d, err := opuspcm.Duration(tt.p); !errors.Is(err, opuspcm.ErrMalformed) {
				t.Fatalf("got %v, %v; want ErrMalformed", d, err)
			}
		})
	}
}

// TestDecoder decodes Chromium's packets, one at a time and joined five to
// a packet, and checks the PCM comes in 100 ms chunks, keeps the tone's
// time and is the same both ways.
func TestDecoder(t *testing.T) {
	packets := chromiumPackets(t)
	n := len(packets) / 5 * 5
	single := decodeAll(t, packets[:n])
	var joined [][]byte
	for i := 0; i < n; i += 5 {
		p, err := opuspcm.Join(packets[i : i+5])
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		if d, err := opuspcm.Duration(p); err != nil || d != 100*time.Millisecond {
			t.Fatalf("joined packet %d lasts %v (%v), want 100ms", i/5, d, err)
		}
		joined = append(joined, p)
	}
	both := decodeAll(t, joined)
	if want := n * 20 * 16 * 2; len(single) != want {
		t.Fatalf("decoded %d bytes of %d packets, want %d", len(single), n, want)
	}
	if !bytes.Equal(single, both) {
		t.Fatal("joined packets decode differently from the packets they hold")
	}
	if rms(single) < 500 {
		t.Fatalf("decoded PCM is near silent (RMS %.0f)", rms(single))
	}
}

func decodeAll(t *testing.T, packets [][]byte) []byte {
	t.Helper()
	d, err := opuspcm.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var pcm []byte
	for i, p := range packets {
		chunks, err := d.Decode(p)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		for _, c := range chunks {
			if len(c) != 3200 {
				t.Fatalf("chunk of %d bytes, want 3200 (100 ms)", len(c))
			}
			pcm = append(pcm, c...)
		}
	}
	return append(pcm, d.Flush()...)
}

func rms(pcm []byte) float64 {
	var sum float64
	for i := 0; i+1 < len(pcm); i += 2 {
		s := float64(int16(binary.LittleEndian.Uint16(pcm[i:])))
		sum += s * s
	}
	return math.Sqrt(sum / float64(len(pcm)/2))
}

func TestDecoder_Malformed(t *testing.T) {
	d, err := opuspcm.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	good := chromiumPackets(t)[10]
	for _, p := range [][]byte{nil, {0x08 | 3, 0}, []byte("not opus at all, but long enough to be tried")} {
		if _, err := d.Decode(p); err == nil {
			t.Fatalf("%x decoded", p)
		}
	}
	if _, err := d.Decode(good); err != nil {
		t.Fatalf("a good packet after bad ones: %v", err)
	}
}

func TestJoin_Refuses(t *testing.T) {
	p := chromiumPackets(t)
	for name, in := range map[string][][]byte{
		"None":          nil,
		"Code1":         {{0x08 | 1, 1, 2}, p[1]},
		"ConfigsDiffer": {p[1], {0x00, 1}},
		"Over120ms":     {p[1], p[2], p[3], p[4], p[5], p[6], p[7]},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := opuspcm.Join(in); !errors.Is(err, opuspcm.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range chromiumPackets(f)[:5] {
		f.Add(p)
	}
	f.Add([]byte{0x08 | 3, 0x80 | 2, 1, 5, 6, 7})
	f.Add([]byte{0x08 | 3, 0x40 | 1, 255, 255})
	d, err := opuspcm.NewDecoder()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		dur, err := opuspcm.Duration(p)
		if err == nil && (dur <= 0 || dur > opuspcm.MaxPacketDuration) {
			t.Fatalf("duration %v", dur)
		}
		if _, derr := d.Decode(p); derr == nil && err != nil {
			t.Fatalf("decoded a packet Duration refused: %v", err)
		}
	})
}
