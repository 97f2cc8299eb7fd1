package redis

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pentecost/pentecost"
)

// A frame travels through Redis as a compact binary payload, the same bytes
// in the stream's history and, prefixed with its number and epoch, in the
// Pub/Sub message:
//
//	offset size field
//	0      1    codec version (1)
//	1      1    kind (pentecost.FrameKind)
//	2      1    flags: bit 0 = caption is final, bit 1 = the audio is
//	            Opus (pentecost.CodecOpus), else PCM
//	3      1    length L of the language code
//	4      8    time, Unix nanoseconds, big-endian int64
//	12     L    language
//	12+L   n    body: audio bytes as produced (FrameAudio), caption text
//	            (FrameCaption), or the event as JSON (FrameEvent)
//
// A frame with a SourceTime (a worker's translated audio) is codec version 2:
// the same header with the source time, Unix nanoseconds, big-endian int64,
// inserted at offset 12 (so the language starts at 20). Frames without one
// stay version 1, which nodes of earlier versions read; those drop version 2
// frames as malformed until they are upgraded too.
//
// The Pub/Sub message is "<seq> <epoch> <payload>": the number and epoch are
// only known inside the publish script, which prepends them as text.
const (
	codecVersion       = 1
	codecVersionSource = 2
	headerLen          = 12
	headerLenSource    = 20
	flagFinal          = 1
	flagOpus           = 2
)

var errBadFrame = errors.New("redis: malformed frame payload")

// encodeFrame returns the payload of f (its Seq and Epoch are not part of it).
func encodeFrame(f *pentecost.Frame) ([]byte, error) {
	if len(f.Language) > 255 {
		return nil, fmt.Errorf("redis: language code of %d bytes", len(f.Language))
	}
	var body []byte
	switch f.Kind {
	case pentecost.FrameCaption:
		body = []byte(f.Text)
	case pentecost.FrameEvent:
		if f.Event != nil {
			var err error
			if body, err = json.Marshal(eventRecordOf(f.Event)); err != nil {
				return nil, err
			}
		}
	default:
		body = f.Data
	}
	version, hl := byte(codecVersion), headerLen
	if !f.SourceTime.IsZero() {
		version, hl = codecVersionSource, headerLenSource
	}
	b := make([]byte, hl+len(f.Language)+len(body))
	b[0], b[1] = version, byte(f.Kind)
	if f.Final {
		b[2] |= flagFinal
	}
	switch f.Codec {
	case pentecost.CodecPCM:
	case pentecost.CodecOpus:
		b[2] |= flagOpus
	default:
		return nil, fmt.Errorf("redis: unknown codec %q", f.Codec)
	}
	b[3] = byte(len(f.Language))
	binary.BigEndian.PutUint64(b[4:], uint64(f.Time.UnixNano()))
	if version == codecVersionSource {
		binary.BigEndian.PutUint64(b[12:], uint64(f.SourceTime.UnixNano()))
	}
	copy(b[hl:], f.Language)
	copy(b[hl+len(f.Language):], body)
	return b, nil
}

// decodeFrame reads a payload back into a frame with the given number and epoch.
func decodeFrame(p string, seq uint64, epoch string) (*pentecost.Frame, error) {
	hl := headerLen
	if len(p) > 0 && p[0] == codecVersionSource {
		hl = headerLenSource
	}
	if len(p) < hl || (p[0] != codecVersion && p[0] != codecVersionSource) || len(p) < hl+int(p[3]) {
		return nil, errBadFrame
	}
	n := int(p[3])
	f := &pentecost.Frame{
		Kind:     pentecost.FrameKind(p[1]),
		Final:    p[2]&flagFinal != 0,
		Time:     time.Unix(0, int64(binary.BigEndian.Uint64([]byte(p[4:12])))),
		Language: p[hl : hl+n],
		Seq:      seq,
		Epoch:    epoch,
	}
	if hl == headerLenSource {
		f.SourceTime = time.Unix(0, int64(binary.BigEndian.Uint64([]byte(p[12:20]))))
	}
	body := p[hl+n:]
	switch f.Kind {
	case pentecost.FrameCaption:
		f.Text = body
	case pentecost.FrameEvent:
		if body != "" {
			var r eventRecord
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				return nil, fmt.Errorf("%w: event: %v", errBadFrame, err)
			}
			f.Event = r.event()
		}
	default:
		if body != "" {
			f.Data = []byte(body)
		}
		if p[2]&flagOpus != 0 {
			f.Codec = pentecost.CodecOpus
		}
	}
	return f, nil
}

// decodeMessage reads a Pub/Sub message "<seq> <epoch> <payload>".
func decodeMessage(msg string) (*pentecost.Frame, error) {
	seqText, rest, ok := strings.Cut(msg, " ")
	if !ok {
		return nil, errBadFrame
	}
	epoch, payload, ok := strings.Cut(rest, " ")
	if !ok {
		return nil, errBadFrame
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return nil, errBadFrame
	}
	return decodeFrame(payload, seq, epoch)
}

// eventRecord is a SessionEvent as encoded: BroadcastState's own JSON form
// drops ChangedAt's precision, and Grace needs a unit.
type eventRecord struct {
	Type         string        `json:"t"`
	Status       string        `json:"s,omitempty"`
	Paused       bool          `json:"p,omitempty"`
	Muted        bool          `json:"m,omitempty"`
	Volume       float64       `json:"v"`
	SpeakerState string        `json:"ss,omitempty"`
	ChangedAt    int64         `json:"c,omitempty"` // Unix nanoseconds
	Reason       string        `json:"r,omitempty"`
	Language     string        `json:"l,omitempty"`
	Grace        int64         `json:"g,omitempty"` // nanoseconds
	Report       *reportRecord `json:"lr,omitempty"`
}

// reportRecord is a LanguageReport as encoded.
type reportRecord struct {
	WorkerID  string `json:"w,omitempty"`
	Stage     string `json:"s,omitempty"`
	ErrorCode string `json:"e,omitempty"`
	LatencyMs int    `json:"ms,omitempty"`
	At        int64  `json:"at,omitempty"` // Unix milliseconds
}

func eventRecordOf(e *pentecost.SessionEvent) eventRecord {
	b := e.BroadcastState
	r := eventRecord{Type: e.Type, Status: string(e.Status), Paused: b.Paused, Muted: b.Muted, Volume: b.Volume,
		SpeakerState: b.SpeakerState, Reason: e.Reason, Language: e.Language, Grace: int64(e.Grace)}
	if !b.ChangedAt.IsZero() {
		r.ChangedAt = b.ChangedAt.UnixNano()
	}
	if lr := e.Report; lr != nil {
		r.Report = &reportRecord{WorkerID: lr.WorkerID, Stage: lr.Stage, ErrorCode: lr.ErrorCode, LatencyMs: lr.LatencyMs}
		if !lr.At.IsZero() {
			r.Report.At = lr.At.UnixMilli()
		}
	}
	return r
}

func (r eventRecord) event() *pentecost.SessionEvent {
	e := &pentecost.SessionEvent{Type: r.Type, Status: pentecost.SessionStatus(r.Status),
		BroadcastState: pentecost.BroadcastState{Paused: r.Paused, Muted: r.Muted, Volume: r.Volume, SpeakerState: r.SpeakerState},
		Reason:         r.Reason, Language: r.Language, Grace: time.Duration(r.Grace)}
	if r.ChangedAt != 0 {
		e.BroadcastState.ChangedAt = time.Unix(0, r.ChangedAt)
	}
	if lr := r.Report; lr != nil {
		e.Report = &pentecost.LanguageReport{WorkerID: lr.WorkerID, Stage: lr.Stage, ErrorCode: lr.ErrorCode, LatencyMs: lr.LatencyMs}
		if lr.At != 0 {
			e.Report.At = time.UnixMilli(lr.At)
		}
	}
	return e
}
