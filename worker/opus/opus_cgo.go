//go:build cgo

package opus

import (
	"fmt"

	"gopkg.in/hraban/opus.v2"
)

// Encoder encodes 16 kHz mono PCM to Opus packets of 20 to 120 ms: VoIP
// application, variable bitrate, no DTX (a listener's player expects a
// packet for every stretch of time, silence included), in-band FEC for
// ExpectedLossPercent. One Encoder encodes one stream, from one goroutine
// at a time: its state carries from packet to packet, as the decoder's
// at the other end does.
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

// Encode returns one packet of pcm, in a new slice the caller owns (it can
// be shared by every listener). pcm is 20, 40, 60, 80, 100 or 120 ms
// (FrameSamples times 1 to MaxPacketFrames); libopus (1.2 or later) codes
// 80 to 120 ms as several 20 to 60 ms frames in one packet. Packets of
// different lengths may follow each other in one stream.
func (e *Encoder) Encode(pcm []int16) ([]byte, error) {
	if err := checkPacket(pcm); err != nil {
		return nil, err
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
	dec  *opus.Decoder
	buf  [maxDecoded]int16
	last int // samples of the last packet decoded
}

// NewDecoder returns a decoder to 16 kHz mono.
func NewDecoder() (*Decoder, error) {
	dec, err := opus.NewDecoder(SampleRate, 1)
	if err != nil {
		return nil, fmt.Errorf("opus: %w", err)
	}
	return &Decoder{dec: dec, last: FrameSamples}, nil
}

// Decode returns the audio of packet, in a new slice: as many samples as
// the packet holds (2.5 to 120 ms). An empty packet stands for a missing
// one and is concealed as Conceal(nil) does. A packet libopus cannot
// decode is an error; the decoder goes on with the next one.
func (d *Decoder) Decode(packet []byte) ([]int16, error) {
	if len(packet) == 0 {
		return d.Conceal(nil)
	}
	n, err := d.dec.Decode(packet, d.buf[:])
	if err != nil {
		return nil, fmt.Errorf("opus: %w", err)
	}
	if n > 0 {
		d.last = n
	}
	return append([]int16(nil), d.buf[:n]...), nil
}

// Conceal returns audio standing in for one missing packet, to be called
// in its place, before next is decoded: as long as the last packet decoded
// (FrameSamples before any), the protocol's rule for a gap in sequence
// numbers. With next (the packet after the missing one) it recovers the
// missing packet's last 20 ms frame from next's in-band FEC data where
// next has some, extrapolating the rest; without, or where next has none,
// libopus extrapolates from the packets before (packet loss concealment),
// fading to silence over a run of missing packets. Either way, decode next
// afterwards as usual.
func (d *Decoder) Conceal(next []byte) ([]int16, error) {
	// libopus takes the length of the gap from the buffer's length (the
	// wrapper passes its capacity).
	pcm := d.buf[:d.last:d.last]
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
