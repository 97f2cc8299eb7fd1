// Package opuspcm reads Opus packets (RFC 6716) in pure Go: it checks a
// packet's framing and measures its duration without decoding it, and
// decodes packets to the 16 kHz PCM the rest of Pentecost carries
// (github.com/pion/opus), so that the serve binary keeps building without
// cgo. The node an Opus speaker is connected to decodes each packet once
// here, for the worker's recognition and for listeners who take PCM.
package opuspcm

import (
	"errors"
	"time"
)

// MaxPacketDuration is the longest a packet may last (RFC 6716 §3.2.5).
const MaxPacketDuration = 120 * time.Millisecond

// maxFrameBytes bounds one compressed frame (RFC 6716 §3.2.1).
const maxFrameBytes = 1275

// ErrMalformed is returned for a packet that breaks RFC 6716's framing
// rules (§3.4, R1–R7).
var ErrMalformed = errors.New("opus: malformed packet")

// frameDuration is the duration of one frame of a TOC configuration
// (RFC 6716 §3.1, table 2).
func frameDuration(toc byte) time.Duration {
	config := toc >> 3
	switch {
	case config < 12: // SILK-only: 10, 20, 40, 60 ms
		return [4]time.Duration{10, 20, 40, 60}[config%4] * time.Millisecond
	case config < 16: // hybrid: 10, 20 ms
		return [2]time.Duration{10, 20}[config%2] * time.Millisecond
	default: // CELT-only: 2.5, 5, 10, 20 ms
		return [4]time.Duration{2500, 5000, 10000, 20000}[config%4] * time.Microsecond
	}
}

// Duration checks p's framing and returns how long it plays. A packet of
// zero-length frames (DTX) is valid and lasts its frames' duration.
func Duration(p []byte) (time.Duration, error) {
	n, err := frameCount(p)
	if err != nil {
		return 0, err
	}
	return time.Duration(n) * frameDuration(p[0]), nil
}

// frameCount applies RFC 6716 §3.4's rules and returns the packet's number
// of frames.
func frameCount(p []byte) (int, error) {
	if len(p) < 1 { // R1
		return 0, ErrMalformed
	}
	body := len(p) - 1
	switch p[0] & 3 {
	case 0: // one frame
		if body > maxFrameBytes { // R2
			return 0, ErrMalformed
		}
		return 1, nil
	case 1: // two frames of equal size
		if body%2 != 0 || body/2 > maxFrameBytes { // R3
			return 0, ErrMalformed
		}
		return 2, nil
	case 2: // two frames, the first's size given
		n1, used, ok := frameLength(p[1:])
		if !ok || n1 > body-used || body-used-n1 > maxFrameBytes { // R4
			return 0, ErrMalformed
		}
		return 2, nil
	}
	// Code 3: a frame count byte, optional padding, CBR or VBR (R5–R7).
	if len(p) < 2 {
		return 0, ErrMalformed
	}
	m := int(p[1] & 0x3f)
	if m == 0 || time.Duration(m)*frameDuration(p[0]) > MaxPacketDuration { // R5
		return 0, ErrMalformed
	}
	vbr, padded := p[1]&0x80 != 0, p[1]&0x40 != 0
	i, end := 2, len(p)
	if padded {
		// Each padding length byte of 255 adds 254 and another byte follows.
		for {
			if i >= end {
				return 0, ErrMalformed
			}
			b := int(p[i])
			i++
			if b == 255 {
				end -= 254
			} else {
				end -= b
				break
			}
		}
		if end < i {
			return 0, ErrMalformed
		}
	}
	if !vbr { // R6: equal frames fill the rest
		if (end-i)%m != 0 || (end-i)/m > maxFrameBytes {
			return 0, ErrMalformed
		}
		return m, nil
	}
	total := 0
	for range m - 1 { // R7: every frame but the last is sized
		n, used, ok := frameLength(p[i:end])
		if !ok || n > maxFrameBytes {
			return 0, ErrMalformed
		}
		i += used
		total += n
	}
	if total > end-i || end-i-total > maxFrameBytes {
		return 0, ErrMalformed
	}
	return m, nil
}

// frameLength reads a frame length of one or two bytes (RFC 6716 §3.2.1).
func frameLength(b []byte) (n, used int, ok bool) {
	switch {
	case len(b) < 1:
		return 0, 0, false
	case b[0] < 252:
		return int(b[0]), 1, true
	case len(b) < 2:
		return 0, 0, false
	}
	return int(b[1])*4 + int(b[0]), 2, true
}
