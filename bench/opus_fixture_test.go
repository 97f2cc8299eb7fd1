package bench_test

import (
	"flag"
	"math"
	"testing"

	pionopus "github.com/pion/opus"

	"github.com/pentecost/pentecost/bench"
	"github.com/pentecost/pentecost/opuspcm"
)

var update = flag.Bool("update", false, "write bench/opus_speech.bin again from the test speech (needs cgo, libopus and espeak-ng)")

// TestOpusFixture: the embedded Opus fixture is 5 s of 100 ms packets
// that follow Opus's framing, differ from each other (a listener tells
// them apart by their bytes), and decode in pure Go (pion/opus, as a
// CGO_ENABLED=0 server decodes them) to speech: every packet something,
// most of them well above silence. Run with -update to write it again:
//
//	go test -run TestOpusFixture ./bench/ -args -update
func TestOpusFixture(t *testing.T) {
	if *update {
		writeOpusFixture(t)
	}
	packets, err := bench.OpusFixture()
	if err != nil {
		t.Fatal(err)
	}
	if len(packets) != 50 {
		t.Errorf("%d packets, want 50 (5 s)", len(packets))
	}
	dec, err := pionopus.NewDecoderWithOutput(16000, 1)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, 1920)
	var total, voiced int
	for i, p := range packets {
		d, err := opuspcm.Duration(p)
		if err != nil || d != bench.OpusPacketInterval {
			t.Fatalf("packet %d: %v, %v; want 100 ms", i, d, err)
		}
		n, err := dec.DecodeToInt16(p, pcm)
		if err != nil || n != 1600 {
			t.Fatalf("packet %d decodes to %d samples, %v", i, n, err)
		}
		var sum float64
		for _, x := range pcm[:n] {
			sum += float64(x) * float64(x)
		}
		if math.Sqrt(sum/float64(n)) > 500 {
			voiced++
		}
		total += len(p)
	}
	kbit := float64(total) * 8 / (float64(len(packets)) * bench.OpusPacketInterval.Seconds()) / 1000
	t.Logf("%d packets, %d bytes, %.1f kbit/s, %d of them speech", len(packets), total, kbit, voiced)
	if voiced < len(packets)/2 {
		t.Errorf("only %d of %d packets hold speech", voiced, len(packets))
	}
	if kbit < 10 || kbit > 32 {
		t.Errorf("%.1f kbit/s, want the worker's 24 kbit/s target's 10-32", kbit)
	}
}
