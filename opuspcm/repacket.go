package opuspcm

// Join makes one packet of several single-frame (code 0) packets of the
// same configuration, as RFC 6716 §3.2.5's code 3 packet with frame sizes
// (VBR): what lets a producer that encodes 20 ms frames send 100 ms
// packets, one message per 100 ms like a PCM chunk, without the header of
// every 20 ms message. It returns ErrMalformed when a packet is not code 0,
// the configurations (the TOC's upper bits) differ, or the result would
// last over MaxPacketDuration.
func Join(packets [][]byte) ([]byte, error) {
	if len(packets) == 0 {
		return nil, ErrMalformed
	}
	if len(packets) == 1 {
		if _, err := frameCount(packets[0]); err != nil {
			return nil, err
		}
		return append([]byte(nil), packets[0]...), nil
	}
	toc := packets[0][0] &^ 3
	if len(packets) > 63 {
		return nil, ErrMalformed
	}
	size := 2
	for _, p := range packets {
		if len(p) < 1 || p[0]&3 != 0 || p[0]&^3 != toc || len(p)-1 > maxFrameBytes {
			return nil, ErrMalformed
		}
		size += len(p) + 1
	}
	out := make([]byte, 0, size)
	out = append(out, toc|3, 0x80|byte(len(packets)))
	for _, p := range packets[:len(packets)-1] {
		out = appendFrameLength(out, len(p)-1)
	}
	for _, p := range packets {
		out = append(out, p[1:]...)
	}
	if _, err := Duration(out); err != nil {
		return nil, err
	}
	return out, nil
}

// appendFrameLength writes a frame length in one or two bytes
// (RFC 6716 §3.2.1).
func appendFrameLength(b []byte, n int) []byte {
	if n < 252 {
		return append(b, byte(n))
	}
	first := 252 + (n-252)&3
	return append(b, byte(first), byte((n-first)/4))
}
