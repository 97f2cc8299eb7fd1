package opuspcm

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/pion/opus"
)

// SampleRate is the rate of the PCM a Decoder makes: 16 kHz mono signed
// 16-bit little-endian, Pentecost's PCM (pentecost.AudioPCM16).
const SampleRate = 16000

// ChunkDuration is how much PCM a Decoder gathers before handing it out:
// the 100 ms a browser speaker's PCM chunks hold, so that listeners of the
// PCM stream get as many messages as from a PCM speaker.
const ChunkDuration = 100 * time.Millisecond

const chunkBytes = int(SampleRate*ChunkDuration/time.Second) * 2

// maxSamples is the most one packet decodes to: 120 ms.
const maxSamples = SampleRate * int(MaxPacketDuration/time.Millisecond) / 1000

// Decoder turns one stream of Opus packets, in order, into PCM. It keeps
// the codec's state between packets, so a stream needs its own Decoder.
// Not safe for concurrent use.
type Decoder struct {
	dec     opus.Decoder
	samples []int16
	pending []byte // PCM not yet handed out, under a chunk
}

// NewDecoder returns a Decoder.
func NewDecoder() (*Decoder, error) {
	d, err := opus.NewDecoderWithOutput(SampleRate, 1)
	if err != nil {
		return nil, err
	}
	return &Decoder{dec: d, samples: make([]int16, maxSamples)}, nil
}

// Decode decodes one packet and returns the whole chunks of PCM now ready
// (none while under ChunkDuration is gathered). A packet that is malformed
// or does not decode returns an error and changes nothing gathered.
func (d *Decoder) Decode(packet []byte) ([][]byte, error) {
	dur, err := Duration(packet)
	if err != nil {
		return nil, err
	}
	n, err := d.dec.DecodeToInt16(packet, d.samples)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// pion gives what the packet holds; a DTX packet of empty frames holds
	// nothing, yet lasts its duration: fill it with silence so the PCM
	// stream keeps time with the speaker.
	want := int(int64(dur) * SampleRate / int64(time.Second))
	for ; n < want && n < len(d.samples); n++ {
		d.samples[n] = 0
	}
	for _, s := range d.samples[:n] {
		d.pending = binary.LittleEndian.AppendUint16(d.pending, uint16(s))
	}
	var out [][]byte
	for len(d.pending) >= chunkBytes {
		out = append(out, append([]byte(nil), d.pending[:chunkBytes]...))
		d.pending = append(d.pending[:0], d.pending[chunkBytes:]...)
	}
	return out, nil
}

// Flush returns the PCM gathered under a chunk (nil when none), for the
// end of a stream.
func (d *Decoder) Flush() []byte {
	if len(d.pending) == 0 {
		return nil
	}
	out := append([]byte(nil), d.pending...)
	d.pending = d.pending[:0]
	return out
}
