package client_test

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/pentecost/pentecost/client"
)

// pcmFrame returns PCM frame seq of n samples of a 440 Hz tone at level
// 8000, continuing from sample offset at.
func pcmFrame(seq uint64, at, n int) client.Frame {
	b := make([]byte, 2*n)
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(at+i)/client.SampleRate))
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return client.Frame{Seq: seq, Codec: client.CodecPCM, Data: b}
}

func rms(pcm []int16) float64 {
	var s float64
	for _, x := range pcm {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s / float64(max(len(pcm), 1)))
}

// TestDecoderPCM: PCM frames come out as their samples. A missing
// sequence number is made up by silence as long as the frame before it,
// ramped down from its last sample and faded in after; a caption's number
// (Advance) is no gap; a gap longer than MaxConceal, Reset and a
// restarted numbering are not filled.
func TestDecoderPCM(t *testing.T) {
	const n = client.SampleRate / 10 // 100 ms chunks
	decode := func(d *client.Decoder, f client.Frame) []int16 {
		t.Helper()
		pcm, err := d.Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		return append([]int16(nil), pcm...)
	}
	t.Run("OK", func(t *testing.T) {
		d := client.NewDecoder()
		f := pcmFrame(7, 0, n)
		got := decode(d, f)
		for i, x := range got {
			if want := int16(binary.LittleEndian.Uint16(f.Data[2*i:])); x != want {
				t.Fatalf("sample %d: %d, want %d", i, x, want)
			}
		}
		d.Advance(8) // a caption
		if got := decode(d, pcmFrame(9, n, n)); len(got) != n {
			t.Errorf("after a caption: %d samples, want %d", len(got), n)
		}
	})
	t.Run("OKGap", func(t *testing.T) {
		d := client.NewDecoder()
		first := decode(d, pcmFrame(1, 0, n))
		d.Advance(2)
		got := decode(d, pcmFrame(5, 3*n, n)) // 3 and 4 lost
		if len(got) != 3*n {
			t.Fatalf("%d samples for two lost frames and one, want %d", len(got), 3*n)
		}
		if d0 := math.Abs(float64(got[0]) - float64(first[n-1])); d0 > 8000.0/80+1 {
			t.Errorf("concealment starts at %d after a last sample of %d", got[0], first[n-1])
		}
		if r := rms(got[client.SampleRate/200 : 2*n]); r != 0 {
			t.Errorf("concealment after its ramp has level %.1f, want silence", r)
		}
		if got[2*n] != 0 || math.Abs(float64(got[2*n+1])) > 8000.0*2/80+1 {
			t.Errorf("the frame after the gap starts %v, not faded in", got[2*n:2*n+3])
		}
		if r := rms(got[2*n+client.SampleRate/200:]); r < 5000 {
			t.Errorf("the frame after the gap has level %.0f after its fade", r)
		}
	})
	t.Run("OKLongGap", func(t *testing.T) {
		d := client.NewDecoder()
		decode(d, pcmFrame(1, 0, n))
		if got := decode(d, pcmFrame(1+client.MaxConceal/n+2, 0, n)); len(got) != n {
			t.Errorf("after a gap longer than MaxConceal: %d samples, want the frame's %d", len(got), n)
		}
	})
	t.Run("OKReset", func(t *testing.T) {
		d := client.NewDecoder()
		decode(d, pcmFrame(1, 0, n))
		d.Reset()
		if got := decode(d, pcmFrame(40, 0, n)); len(got) != n {
			t.Errorf("after Reset: %d samples, want %d", len(got), n)
		}
		if got := decode(d, pcmFrame(3, 0, n)); len(got) != n {
			t.Errorf("after numbering restarted: %d samples, want %d", len(got), n)
		}
	})
	t.Run("ErrOpusPacket", func(t *testing.T) {
		d := client.NewDecoder()
		decode(d, pcmFrame(1, 0, n))
		// TOC code 3 without its frame count (RFC 6716 R6).
		if pcm, err := d.Decode(client.Frame{Seq: 2, Codec: client.CodecOpus, Data: []byte{0x4b}}); err == nil {
			t.Errorf("a truncated packet decoded to %d samples", len(pcm))
		}
		if got := decode(d, pcmFrame(3, 2*n, n)); len(got) != 2*n {
			t.Errorf("after a packet that failed: %d samples, want it made up: %d", len(got), 2*n)
		}
	})
	t.Run("ErrCodec", func(t *testing.T) {
		d := client.NewDecoder()
		decode(d, pcmFrame(1, 0, n))
		if _, err := d.Decode(client.Frame{Seq: 2, Codec: "mp3", Data: make([]byte, 10)}); !errors.Is(err, client.ErrCodec) {
			t.Errorf("unknown codec: %v, want ErrCodec", err)
		}
		if got := decode(d, pcmFrame(3, 2*n, n)); len(got) != 2*n {
			t.Errorf("after a frame that failed: %d samples, want it made up: %d", len(got), 2*n)
		}
	})
}
