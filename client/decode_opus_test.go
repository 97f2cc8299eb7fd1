//go:build cgo

package client_test

import (
	"math"
	"testing"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/worker/opus"
)

// TestDecoderOpus: 100 ms Opus packets from the worker's encoder, one of
// them lost and one PCM chunk among them (a listener of Opus gets both),
// decode to exactly the input's length, and outside the lost packet to
// what libopus decodes (pion/opus and libopus agree within 30 dB).
func TestDecoderOpus(t *testing.T) {
	const n = opus.PacketSamples
	in := make([]int16, 20*n)
	for i := range in {
		tt := float64(i) / opus.SampleRate
		in[i] = int16(8000 * (0.6 + 0.4*math.Sin(2*math.Pi*3*tt)) * math.Sin(2*math.Pi*440*tt))
	}
	enc, err := opus.NewEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := opus.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	const lost, pcm = 7, 12 // packet 7 goes missing; packet 12 goes as PCM
	d := client.NewDecoder()
	var out, want []int16
	for k := range len(in) / n {
		p, err := enc.Encode(in[k*n : (k+1)*n])
		if err != nil {
			t.Fatal(err)
		}
		r, err := ref.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		f := client.Frame{Seq: uint64(100 + k), Codec: client.CodecOpus, Data: p}
		switch k {
		case lost:
			want = append(want, make([]int16, n)...)
			continue
		case pcm:
			f = pcmFrame(f.Seq, k*n, n)
			r = make([]int16, n)
			for i := range r {
				r[i] = int16(uint16(f.Data[2*i]) | uint16(f.Data[2*i+1])<<8)
			}
		}
		got, err := d.Decode(f)
		if err != nil {
			t.Fatalf("packet %d: %v", k, err)
		}
		out = append(out, got...)
		want = append(want, r...)
	}
	if len(out) != len(in) {
		t.Fatalf("%d samples decoded from %d, one packet lost", len(out), len(in))
	}
	// Compare where neither concealment, its fades nor the codec switches
	// to and from PCM (whose own decoder state starts over) are.
	var sig, noise float64
	for k := 1; k < len(in)/n; k++ {
		if k >= lost && k <= lost+1 || k >= pcm && k <= pcm+1 {
			continue
		}
		for i := k * n; i < (k+1)*n; i++ {
			dv := float64(out[i]) - float64(want[i])
			sig += float64(want[i]) * float64(want[i])
			noise += dv * dv
		}
	}
	snr := 10 * math.Log10(sig/noise)
	t.Logf("pion/opus against libopus: %.1f dB SNR", snr)
	if snr < 30 {
		t.Errorf("pion/opus decodes at %.1f dB SNR against libopus, want at least 30", snr)
	}
	if r := rms(out[lost*n+80 : (lost+1)*n]); r != 0 {
		t.Errorf("the lost packet is made up with level %.0f, want silence", r)
	}
}
