package realtime

import (
	"encoding/base64"
	"encoding/binary"
	"strconv"

	"github.com/pentecost/pentecost"
)

// WebSocket opcodes the server writes.
const (
	opText   byte = 0x1
	opBinary byte = 0x2
	opClose  byte = 0x8
	opPing   byte = 0x9
	opPong   byte = 0xA
)

// Close codes of the protocol (docs/protocol.md, section 5).
const (
	CloseNormal      = 1000 // session ended: stop
	CloseGoingAway   = 1001 // server shutting down: reconnect at once
	CloseProtocol    = 1002 // broken WebSocket framing
	CloseInvalidData = 1007 // a text message or close reason not UTF-8: stop
	ClosePolicy      = 1008 // join refused: stop (the error message says why)
	CloseTooBig      = 1009 // message over the read limit: stop
	CloseInternal    = 1011 // internal error: reconnect with backoff
	CloseTryAgain    = 1013 // session full or service unavailable: retry later
	CloseIdle        = 4000 // heartbeat timeout: reconnect, resuming
	CloseSlow        = 4001 // fell too far behind: reconnect, resuming
	CloseMaxDuration = 4002 // connection too old: reconnect, resuming
	CloseReplaced    = 4003 // another speaker connection took over: stop
	// CloseTokenInvalid: the speaker's token no longer holds (account
	// removed, password changed, token expired): stop, sign in again.
	CloseTokenInvalid = 4004
)

// BinaryHeaderSize is the size of the header of a binary audio frame:
// version, kind, language (2), sequence number (8), timestamp ms (8).
const BinaryHeaderSize = 20

// Binary frame header values: kind 1 carries PCM, kind 2 one Opus packet.
const (
	BinaryVersion   = 1
	BinaryKindAudio = 1
	BinaryKindOpus  = 2
)

// maxFrameHeader is the largest server-to-client WebSocket frame header.
const maxFrameHeader = 10

// wsMsg is one encoded WebSocket frame, header included, ready to be written
// as is. One wsMsg is shared by every connection it is queued on, so it is
// never modified after creation.
type wsMsg struct {
	b []byte
	// audio marks frames that may be dropped when a queue is full.
	audio bool
}

// frameHeader writes the header of an unmasked, final frame of n bytes
// into the end of dst[:maxFrameHeader] and returns where it starts.
func frameHeader(dst []byte, op byte, n int) int {
	switch {
	case n < 126:
		dst[8], dst[9] = 0x80|op, byte(n)
		return 8
	case n <= 0xFFFF:
		dst[6], dst[7] = 0x80|op, 126
		binary.BigEndian.PutUint16(dst[8:], uint16(n))
		return 6
	default:
		dst[0], dst[1] = 0x80|op, 127
		binary.BigEndian.PutUint64(dst[2:], uint64(n))
		return 0
	}
}

// newMsg frames payload as one WebSocket frame. buf must hold
// maxFrameHeader spare bytes before the payload: buf[:maxFrameHeader] is
// header space and buf[maxFrameHeader:] the payload, so no copy is needed.
func newMsg(op byte, buf []byte, audio bool) *wsMsg {
	start := frameHeader(buf[:maxFrameHeader], op, len(buf)-maxFrameHeader)
	return &wsMsg{b: buf[start:], audio: audio}
}

// controlMsg frames a small control payload (ping, pong, close).
func controlMsg(op byte, payload []byte) *wsMsg {
	buf := make([]byte, maxFrameHeader, maxFrameHeader+len(payload))
	return newMsg(op, append(buf, payload...), false)
}

// closeMsg frames a close with a code and a short reason.
func closeMsg(code int, reason string) *wsMsg {
	if len(reason) > 120 {
		reason = reason[:120]
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	return controlMsg(opClose, append(p, reason...))
}

// encodeBinaryAudio encodes f as a binary audio frame (docs/protocol.md 3.1).
func encodeBinaryAudio(f *pentecost.Frame) *wsMsg {
	buf := make([]byte, maxFrameHeader+BinaryHeaderSize+len(f.Data))
	h := buf[maxFrameHeader:]
	h[0], h[1] = BinaryVersion, BinaryKindAudio
	if f.Codec == pentecost.CodecOpus {
		h[1] = BinaryKindOpus
	}
	copy(h[2:4], langBytes(f.Language))
	binary.BigEndian.PutUint64(h[4:], f.Seq)
	binary.BigEndian.PutUint64(h[12:], uint64(pentecost.UnixMilli(f.Timestamp())))
	copy(h[BinaryHeaderSize:], f.Data)
	return newMsg(opBinary, buf, true)
}

func langBytes(l string) []byte {
	b := []byte("??")
	if len(l) == 2 {
		copy(b, l)
	}
	return b
}

// encodeJSONAudio encodes f as an audioData text frame. It is written by
// hand because it runs once per frame and encoding/json would reflect and
// allocate several times for what is a fixed shape; session IDs and
// language codes are validated and never need escaping.
func encodeJSONAudio(sessionID string, f *pentecost.Frame) *wsMsg {
	n := maxFrameHeader + 120 + len(sessionID) + base64.StdEncoding.EncodedLen(len(f.Data))
	buf := make([]byte, maxFrameHeader, n)
	buf = append(buf, `{"type":"audioData","sessionId":"`...)
	buf = append(buf, sessionID...)
	buf = append(buf, `","audioData":"`...)
	buf = base64.StdEncoding.AppendEncode(buf, f.Data)
	buf = append(buf, `","sequenceNumber":`...)
	buf = strconv.AppendUint(buf, f.Seq, 10)
	buf = append(buf, `,"timestamp":`...)
	buf = strconv.AppendInt(buf, pentecost.UnixMilli(f.Timestamp()), 10)
	buf = append(buf, `,"language":"`...)
	buf = append(buf, f.Language...)
	if f.Codec != pentecost.CodecPCM {
		// Only Opus frames say so: PCM messages stay byte for byte what
		// the original system's clients read.
		buf = append(buf, `","codec":"`...)
		buf = append(buf, f.Codec...)
	}
	buf = append(buf, `"}`...)
	return newMsg(opText, buf, true)
}

// DecodeBinaryAudio parses a binary PCM audio frame as the server sends
// it. It is exported for clients and tests; DecodeBinaryFrame reads Opus
// frames too. Errors: EINVALIDMESSAGE.
func DecodeBinaryAudio(p []byte) (language string, seq uint64, timestampMs int64, audio []byte, err error) {
	if len(p) < BinaryHeaderSize || p[0] != BinaryVersion || p[1] != BinaryKindAudio {
		return "", 0, 0, nil, pentecost.Errorf(pentecost.EINVALIDMESSAGE, "Not a binary audio frame.")
	}
	return string(p[2:4]), binary.BigEndian.Uint64(p[4:]), int64(binary.BigEndian.Uint64(p[12:])), p[BinaryHeaderSize:], nil
}

// BinaryFrame is a binary audio frame as DecodeBinaryFrame reads it.
type BinaryFrame struct {
	Language    string
	Codec       string // pentecost.CodecPCM or CodecOpus
	Seq         uint64
	TimestampMs int64
	Audio       []byte // PCM, or one Opus packet
}

// DecodeBinaryFrame parses a binary audio frame of either kind.
// Errors: EINVALIDMESSAGE.
func DecodeBinaryFrame(p []byte) (BinaryFrame, error) {
	if len(p) < BinaryHeaderSize || p[0] != BinaryVersion || (p[1] != BinaryKindAudio && p[1] != BinaryKindOpus) {
		return BinaryFrame{}, pentecost.Errorf(pentecost.EINVALIDMESSAGE, "Not a binary audio frame.")
	}
	f := BinaryFrame{Language: string(p[2:4]), Seq: binary.BigEndian.Uint64(p[4:]),
		TimestampMs: int64(binary.BigEndian.Uint64(p[12:])), Audio: p[BinaryHeaderSize:]}
	if p[1] == BinaryKindOpus {
		f.Codec = pentecost.CodecOpus
	}
	return f, nil
}

// codecName is a codec as the protocol names it.
func codecName(codec string) string {
	if codec == pentecost.CodecPCM {
		return "pcm"
	}
	return codec
}
