//go:build cgo

package bench_test

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/pentecost/pentecost/worker"
	"github.com/pentecost/pentecost/worker/opus"
)

// writeOpusFixture writes opus_speech.bin: the worker's test script
// (worker/testdata/script.txt) spoken by espeak-ng's en-us voice, sentence
// after sentence, with white noise 40 dB below the speech (a microphone's
// floor; it also keeps any two packets from being equal), its first 5 s
// encoded as the worker encodes: 100 ms packets at the default bitrate.
func writeOpusFixture(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("../worker/testdata/script.txt")
	if err != nil {
		t.Fatal(err)
	}
	e := worker.NewEspeak()
	e.Voices["en"] = "en-us"
	var speech []int16
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		pcm, err := e.Synthesize(context.Background(), line, "en")
		if err != nil {
			t.Fatal(err)
		}
		speech = append(speech, pcm...)
	}
	const n = 50 * opus.PacketSamples
	if len(speech) < n {
		t.Fatalf("%d samples of speech, want at least %d", len(speech), n)
	}
	speech = speech[:n]
	sigma := worker.RMS(speech) / math.Pow(10, 40.0/20)
	rng := rand.New(rand.NewPCG(14, 2))
	for i, x := range speech {
		speech[i] = int16(max(math.MinInt16, min(math.MaxInt16, math.Round(float64(x)+rng.NormFloat64()*sigma))))
	}
	enc, err := opus.NewEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for i := 0; i < n; i += opus.PacketSamples {
		p, err := enc.Encode(speech[i : i+opus.PacketSamples])
		if err != nil {
			t.Fatal(err)
		}
		out = binary.LittleEndian.AppendUint16(out, uint16(len(p)))
		out = append(out, p...)
	}
	if err := os.WriteFile("opus_speech.bin", out, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Fatal("opus_speech.bin written: build again to embed it, then run the test without -update")
}
