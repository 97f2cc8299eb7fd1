//go:build cgo

package opus

import (
	"fmt"

	"gopkg.in/hraban/opus.v2"
)

// Encoder encodes 20 ms frames of 16 kHz mono PCM to Opus packets: VoIP
// application, variable bitrate, no DTX (a listener's player expects a
// packet every 20 ms, silence included), in-band FEC for
// ExpectedLossPercent. One Encoder encodes one stream, from one goroutine
// at a time.
type Encoder struct {
	enc *opus.Encoder
	buf [maxPacket]byte
}

// NewEncoder returns an encoder aiming at bitrate bits per second;
// 0 means DefaultBitrate.
func NewEncoder(bitrate int) (*Encoder, error) {
	bitrate, err := checkBitrate(bitrate)
	if err != nil {
		return nil, err
	}
	enc, err := opus.NewEncoder(SampleRate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("opus: %w", err)
	}
	for _, set := range []func() error{
		func() error { return enc.SetBitrate(bitrate) },
		func() error { return enc.SetComplexity(Complexity) },
		func() error { return enc.SetDTX(false) },
		func() error { return enc.SetInBandFEC(true) },
		func() error { return enc.SetPacketLossPerc(ExpectedLossPercent) },
	} {
		if err := set(); err != nil {
			return nil, fmt.Errorf("opus: %w", err)
		}
	}
	return &Encoder{enc: enc}, nil
}

// Encode returns the packet of one frame of FrameSamples samples, in a
// new slice the caller owns (it can be shared by every listener).
func (e *Encoder) Encode(pcm []int16) ([]byte, error) {
	if len(pcm) != FrameSamples {
		return nil, ErrFrameSize
	}
	n, err := e.enc.Encode(pcm, e.buf[:])
	if err != nil {
		return nil, fmt.Errorf("opus: %w", err)
	}
	return append([]byte(nil), e.buf[:n]...), nil
}

// Decoder decodes Opus packets (from this package's Encoder or any other
// encoder: any bandwidth, mono or stereo, 2.5 to 120 ms) to 16 kHz mono
// PCM. One Decoder decodes one stream, in order, from one goroutine at a
// time: its state carries from packet to packet.
type Decoder struct {
	dec *opus.Decoder
	buf [maxDecoded]int16
}

// NewDecoder returns a decoder to 16 kHz mono.
func NewDecoder() (*Decoder, error) {
	dec, err := opus.NewDecoder(SampleRate, 1)
	if err != nil {
		return nil, fmt.Errorf("opus: %w", err)
	}
	return &Decoder{dec: dec}, nil
}

// Decode returns the audio of packet, in a new slice: FrameSamples samples
// for a packet of this package's Encoder. An empty packet stands for a
// missing one and is concealed as Conceal(nil) does. A packet libopus
// cannot decode is an error; the decoder goes on with the next one.
func (d *Decoder) Decode(packet []byte) ([]int16, error) {
	if len(packet) == 0 {
		return d.Conceal(nil)
	}
	n, err := d.dec.Decode(packet, d.buf[:])
	if err != nil {
		return nil, fmt.Errorf("opus: %w", err)
	}
	return append([]int16(nil), d.buf[:n]...), nil
}

// Conceal returns FrameSamples samples standing in for one missing
// packet, to be called in its place, before next is decoded. With next
// (the packet after the missing one) it recovers the missing frame from
// next's in-band FEC data where next has some; without, or where next has
// none, libopus extrapolates from the packets before (packet loss
// concealment), fading to silence over a run of missing packets. Either
// way, decode next afterwards as usual.
func (d *Decoder) Conceal(next []byte) ([]int16, error) {
	// libopus takes the length of the gap from the buffer's length (the
	// wrapper passes its capacity): exactly one frame.
	pcm := d.buf[:FrameSamples:FrameSamples]
	var err error
	if len(next) > 0 {
		err = d.dec.DecodeFEC(next, pcm)
	} else {
		err = d.dec.DecodePLC(pcm)
	}
	if err != nil {
		return nil, fmt.Errorf("opus: %w", err)
	}
	return append([]int16(nil), pcm...), nil
}
