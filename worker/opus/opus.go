// Package opus encodes the worker's audio (16 kHz mono signed 16-bit
// samples) to Opus packets of 20 to 120 ms, one packet per call, and
// decodes Opus packets back to that PCM, concealing a missing packet.
//
// It wraps libopus through cgo (gopkg.in/hraban/opus.v2, Debian's
// libopus-dev and libopusfile-dev to build). A binary built with
// CGO_ENABLED=0 still compiles against this package, but NewEncoder and
// NewDecoder return ErrNoCgo: the server binary does not need Opus, and
// keeps building without a C toolchain.
package opus

import "errors"

// SampleRate is the rate of the PCM going in and coming out: 16 kHz, the
// worker's and the wire's rate.
const SampleRate = 16000

// FrameSamples is the length of one Opus frame: 20 ms. A packet holds one
// or more of them (Encoder.Encode).
const FrameSamples = SampleRate / 50

// PacketSamples is the length of the packets the worker sends: 100 ms,
// five 20 ms frames in one packet (RFC 6716 section 3.2.5, code 3), as the
// wire protocol recommends. Against one packet per 20 ms frame it sends a
// fifth of the messages, with a fifth of their header bytes, for the same
// audio (libopus codes five 20 ms frames either way): measured on unseen
// speech in noise at DefaultBitrate, 23.4 kbit/s of packets, 25.4 on the
// wire with the protocol's and WebSocket's headers against 32.2 for 20 ms
// packets (docs/translation.md, "Opus").
const PacketSamples = 5 * FrameSamples

// MaxPacketFrames is the most 20 ms frames one packet holds: 120 ms,
// Opus's longest packet.
const MaxPacketFrames = 6

// Delay is how late decoded audio comes out, in samples: the encoder's
// lookahead, 2.5 ms plus 4 ms of delay compensation at 16 kHz with the
// VoIP application (libopus's OPUS_GET_LOOKAHEAD; Chromium's encoder
// states the same 104 samples as its pre-skip). A decoder's first Delay
// samples are the encoder's start-up, not input.
const Delay = 104

// DefaultBitrate is the target bitrate, in bits per second, of an encoder
// made with bitrate 0. Measured on the test speech (docs/translation.md,
// "Opus"): 22-24 kbit/s while speaking, 18-23 kbit/s overall, 26-31 with
// the protocol's frame headers; decoded, it recognises as well as the PCM.
const DefaultBitrate = 24000

// Complexity is the encoder's complexity, 0 to 10. Measured with libopus
// 1.3.1 at 24 kbit/s: 10 costs about 0.3 ms per 20 ms frame on a busy
// 2-core VM (1.5 % of a core per language; the worker encodes once per
// language, not per listener), 5 about 0.13 ms; but below 8 the FEC data
// recovered a lost packet no better than PLC (3.2 against 4.6 dB SNR).
const Complexity = 10

// ExpectedLossPercent is the packet loss the encoder prepares for with
// in-band FEC: each packet carries a coarse copy of the one before, from
// which a decoder missing that one recovers it (Decoder.Conceal). The
// wire is a WebSocket, which loses nothing; a packet goes missing only
// when the server or the worker drops frames (stale audio, a slow
// listener, a reconnection), mostly in runs that FEC, one packet deep,
// cannot repair. So a low figure: libopus sends no FEC data at 0 %, and
// at 1-10 % it costs the same (at 24 kbit/s on the test speech: 16.2
// kbit/s without, 17.2 with, concealed frames 4.6-6.5 dB SNR against PLC's
// 2.7). At 16 kbit/s and below libopus sends none at any percentage.
const ExpectedLossPercent = 5

// MinBitrate and MaxBitrate bound the bitrate NewEncoder accepts, in bits
// per second: libopus's own bounds.
const (
	MinBitrate = 6000
	MaxBitrate = 510000
)

// maxPacket bounds one encoded packet: each frame at most the 1,275 bytes
// Opus allows a frame, plus a table-of-contents byte, a frame count byte
// and two length bytes per frame (RFC 6716 section 3.2.5).
const maxPacket = MaxPacketFrames*(1275+2) + 2

// maxDecoded is the longest audio one packet can hold: 120 ms.
const maxDecoded = SampleRate * 120 / 1000

// ErrNoCgo is returned by NewEncoder and NewDecoder in a binary built
// without cgo.
var ErrNoCgo = errors.New("opus: Opus needs a build with cgo and libopus")

// ErrFrameSize is returned by Encode for audio that is not a whole number
// of 20 ms frames, from one to MaxPacketFrames.
var ErrFrameSize = errors.New("opus: a packet must be 20, 40, 60, 80, 100 or 120 ms (a multiple of 320 samples at 16 kHz, up to 1920)")

// ErrBitrate is returned by NewEncoder for a bitrate outside MinBitrate to
// MaxBitrate.
var ErrBitrate = errors.New("opus: bitrate out of range 6000-510000 bit/s")

// checkPacket reports whether pcm is a length Encode accepts.
func checkPacket(pcm []int16) error {
	if len(pcm) == 0 || len(pcm)%FrameSamples != 0 || len(pcm) > MaxPacketFrames*FrameSamples {
		return ErrFrameSize
	}
	return nil
}

// checkBitrate returns the bitrate to use for bitrate, DefaultBitrate for
// 0, or ErrBitrate.
func checkBitrate(bitrate int) (int, error) {
	if bitrate == 0 {
		return DefaultBitrate, nil
	}
	if bitrate < MinBitrate || bitrate > MaxBitrate {
		return 0, ErrBitrate
	}
	return bitrate, nil
}
