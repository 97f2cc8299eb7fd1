package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/pion/opus"

	"github.com/pentecost/pentecost/opuspcm"
)

// SampleRate is the rate of the PCM the protocol carries and Decoder
// returns: 16 kHz, mono.
const SampleRate = 16000

// MaxConceal bounds how much audio a Decoder makes up for one gap: 1 s.
// A longer gap is not filled: a live player that missed that much starts
// afresh rather than falling that far behind the speaker.
const MaxConceal = SampleRate

// fadeSamples is the length of the fades around a concealed gap: 5 ms,
// long enough that neither edge clicks, short enough to keep the words.
const fadeSamples = SampleRate / 200

// maxPacketSamples is the most audio one Opus packet holds: 120 ms.
const maxPacketSamples = SampleRate * 120 / 1000

// ErrCodec is returned by Decoder.Decode for a frame of a codec it does
// not know.
var ErrCodec = errors.New("pentecost: unknown audio codec")

// Decoder turns the frames a Listener delivers, PCM and Opus alike (a
// listener of Opus gets both), into 16 kHz mono 16-bit samples, and makes
// up for audio frames that went missing. It decodes Opus in pure Go with
// github.com/pion/opus, which decodes every Opus mode (SILK, CELT,
// hybrid) but has no packet loss concealment; so a missing frame is
// filled with silence, ramped down over 5 ms from the last sample played,
// and the audio after it fades in over 5 ms, so that neither edge clicks.
// Silence, not a repetition of the last packet: repeating 100 ms of speech
// is heard as a stutter, a short hole is not.
//
// Which sequence numbers are missing: a Listener delivers every number of
// its stream once and in order, audio and captions alike, so a number not
// delivered is lost. Give the Decoder every audio frame (Decode) and every
// caption's number (Advance); after a streamGap or an audioSkipped, and
// when the language changes, call Reset: the next frame then starts
// afresh, nothing before it is made up. A Decoder is used from one
// goroutine at a time (a Listener's callbacks are).
type Decoder struct {
	opus    opus.Decoder
	started bool
	last    uint64 // the last sequence number seen
	missing int    // numbers lost since the last frame decoded
	length  int    // samples of the last frame decoded
	tail    int16  // its last sample, where concealment fades from
	fadeIn  bool   // the next frame follows concealment
	out     []int16
	pcm     []int16 // the frame being decoded
}

// NewDecoder returns a Decoder of a stream that starts with the next
// frame.
func NewDecoder() *Decoder {
	d := &Decoder{}
	d.Reset()
	return d
}

// Reset starts afresh: nothing before the next frame is made up, and the
// Opus decoder's state is forgotten.
func (d *Decoder) Reset() {
	// NewDecoderWithOutput fails only for a rate or channel count other
	// than these, which Opus defines.
	d.opus, _ = opus.NewDecoderWithOutput(SampleRate, 1)
	d.started, d.last, d.missing, d.length, d.tail, d.fadeIn = false, 0, 0, 0, 0, false
}

// Advance records that seq carried no audio (a caption's Seq), so that it
// does not count as missing audio.
func (d *Decoder) Advance(seq uint64) { d.see(seq) }

// see records seq as delivered, counting the numbers skipped before it.
func (d *Decoder) see(seq uint64) {
	switch {
	case !d.started:
		d.started = true
	case seq <= d.last:
		// Numbering restarted (a new epoch, a Decoder fed two streams):
		// nothing to make up.
		d.missing = 0
	default:
		d.missing = int(min(uint64(d.missing)+seq-d.last-1, MaxConceal))
	}
	d.last = seq
}

// Decode returns f's audio as samples: first as much audio as the last
// frame held for each sequence number missing before f (at most
// MaxConceal in all; nothing for a longer gap), then f's own. The slice is
// only valid until the next call. A packet that does not decode is an
// error, and counts as missing: the next frame makes up for it.
func (d *Decoder) Decode(f Frame) ([]int16, error) {
	d.see(f.Seq)
	var pcm []int16
	switch f.Codec {
	case CodecPCM, "":
		pcm = d.buffer(len(f.Data) / 2)
		for i := range pcm {
			pcm[i] = int16(uint16(f.Data[2*i]) | uint16(f.Data[2*i+1])<<8)
		}
	case CodecOpus:
		dur, err := opuspcm.Duration(f.Data)
		var n int
		if err == nil {
			n, err = d.opus.DecodeToInt16(f.Data, d.buffer(maxPacketSamples))
		}
		if err != nil {
			d.missing++
			return nil, fmt.Errorf("pentecost: Opus packet %d: %w", f.Seq, err)
		}
		// A packet of empty frames (DTX) decodes to nothing yet lasts its
		// duration: silence keeps the time.
		pcm = d.pcm[:max(n, min(int(dur*SampleRate/time.Second), maxPacketSamples))]
		clear(pcm[n:])
	default:
		d.missing++
		return nil, fmt.Errorf("%w: %q", ErrCodec, f.Codec)
	}
	d.out = d.out[:0]
	if gap := d.missing * d.length; gap > MaxConceal {
		d.fadeIn = true // no filling, but no click either
	} else if gap > 0 {
		d.out = d.conceal(d.out, gap)
	}
	d.missing = 0
	start := len(d.out)
	d.out = append(d.out, pcm...)
	if d.fadeIn {
		rampUp(d.out[start:])
		d.fadeIn = false
	}
	if len(pcm) > 0 {
		d.length, d.tail = len(pcm), pcm[len(pcm)-1]
	}
	return d.out, nil
}

// buffer returns d.pcm with n samples.
func (d *Decoder) buffer(n int) []int16 {
	if cap(d.pcm) < n {
		d.pcm = make([]int16, n)
	}
	d.pcm = d.pcm[:n]
	return d.pcm
}

// conceal appends n samples of silence, faded into from the last sample
// played.
func (d *Decoder) conceal(out []int16, n int) []int16 {
	for i := range n {
		v := int16(0)
		if i < fadeSamples {
			v = int16(int(d.tail) * (fadeSamples - 1 - i) / fadeSamples)
		}
		out = append(out, v)
	}
	d.fadeIn = true
	return out
}

// rampUp fades the start of pcm in from silence.
func rampUp(pcm []int16) {
	for i := range min(len(pcm), fadeSamples) {
		pcm[i] = int16(int(pcm[i]) * (i + 1) / fadeSamples)
	}
}
