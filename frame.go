package pentecost

import "time"

// FrameKind says what a Frame carries.
type FrameKind uint8

// Frame kinds. Audio and captions flow on a language's stream; events flow on
// a session's control stream (Language == ControlLanguage).
const (
	FrameAudio FrameKind = iota + 1
	FrameCaption
	FrameEvent
)

// ControlLanguage is the Language of a session's control stream, which
// carries SessionEvents rather than audio.
const ControlLanguage = ""

// Audio chunk bounds: smaller chunks are noise, larger ones would delay
// everyone behind them. Chunks outside are refused with EINVALIDAUDIO.
const (
	MinAudioChunk = 100
	MaxAudioChunk = 32 << 10
)

// Audio codecs. A frame's Codec and a stream's are one of these.
const (
	// CodecPCM is 16 kHz mono signed 16-bit little-endian PCM (AudioPCM16),
	// what every client of the original system takes.
	CodecPCM = ""
	// CodecOpus is one Opus packet (RFC 6716) per frame, mono.
	CodecOpus = "opus"
)

// StreamKey names one ordered stream of frames: a session's audio and
// captions in one language and codec, or (Language == ControlLanguage) its
// events. A language has a PCM stream, which carries only PCM, and an Opus
// stream, which carries the producer's Opus packets or, from a producer
// without Opus, its PCM: a listener that accepts Opus plays whichever each
// frame's Codec says. Each stream numbers its frames on its own.
type StreamKey struct {
	SessionID string
	Language  string
	Codec     string
}

// Name returns the stream's name within its session: the language for
// the PCM stream (as before Opus, so stored names stay valid) and
// "language.opus" for the Opus stream.
func (k StreamKey) Name() string {
	if k.Codec == CodecPCM {
		return k.Language
	}
	return k.Language + "." + k.Codec
}

// String returns "session/name", for logs and broker channel names.
func (k StreamKey) String() string { return k.SessionID + "/" + k.Name() }

// Frame is one publication on a stream. The broker assigns Seq and Epoch;
// everything else is set by the publisher. A published Frame is shared by
// every receiver and must not be modified after Publish.
type Frame struct {
	Kind     FrameKind
	Language string

	// Seq numbers the frames of a stream from 1 without gaps; a listener
	// resumes after the last Seq it played. Epoch changes when numbering
	// restarts (a lost history), telling clients their Seq no longer applies.
	Seq   uint64
	Epoch string

	// Time is when the server received the frame from its producer. The
	// broker keeps history by it. A frame waits at most the maximum frame
	// age between being received and published (older ones are dropped).
	// A receiving node measures the frame's age from it, on its own clock,
	// to skip audio that arrives too late to be worth hearing (a backlog
	// after a broker outage); never from SourceTime, which for translated
	// audio is seconds older by design.
	Time time.Time

	// SourceTime, when set, is the capture time of the speech a worker's
	// translated audio carries (its sourceTimestamp): what clients get as
	// the frame's timestamp, so that they can show mouth-to-ear delay.
	// Zero for the speaker's own audio, whose capture time is about Time.
	SourceTime time.Time

	// Data is the audio exactly as produced (FrameAudio), in Codec: PCM
	// chunks or one Opus packet.
	Data  []byte
	Codec string

	// Text and Final carry a caption (FrameCaption).
	Text  string
	Final bool

	// Event is set for FrameEvent.
	Event *SessionEvent
}

// SessionEvent types: what every node's hub turns into messages for its
// local connections.
const (
	EventSessionUpdated         = "sessionUpdated"
	EventSessionEnded           = "sessionEnded"
	EventSpeakerDisconnected    = "speakerDisconnected"
	EventSpeakerReconnected     = "speakerReconnected"
	EventTranslationAvailable   = "translationAvailable"
	EventTranslationUnavailable = "translationUnavailable"
)

// SessionEvent is a change of a session that its listeners must hear about,
// whichever node they are on.
type SessionEvent struct {
	Type string

	// Status and BroadcastState are the session's state after the change
	// (EventSessionUpdated); each node compares them with what it last saw
	// to tell listeners what changed.
	Status         SessionStatus
	BroadcastState BroadcastState

	// Reason is why a session ended: "ended", "speakerTimeout", "expired".
	Reason string

	// Language is the language a translation event is about.
	Language string

	// Grace is how long the speaker has to come back (EventSpeakerDisconnected).
	Grace time.Duration

	// Report is a worker's status of the language it produces
	// (EventLanguageStatus); Language names the language.
	Report *LanguageReport
}

// EventLanguageStatus carries a worker's LanguageReport to the session's
// speaker, whichever node it is on.
const EventLanguageStatus = "languageStatus"

// LanguageReport is how a worker fares producing one language of a
// session: which stage fails, with which error code, and how late its
// output is. It never carries engine text.
type LanguageReport struct {
	WorkerID  string
	Stage     string // "recognize", "translate", "synthesize" or "" (all well)
	ErrorCode string // "timeout", "throttled", "unavailable", "refused", "bad_response", "unsupported", "internal" or ""
	LatencyMs int
	At        time.Time
}

// StreamPosition describes a stream's history at one moment.
type StreamPosition struct {
	Epoch string
	// First is the oldest Seq still held (0 when the history is empty);
	// Last is the newest Seq ever published (0 when none).
	First, Last uint64
}

// Timestamp is the frame's time as clients see it (the timestamp of
// audioData and of the binary header): the capture time of its speech,
// SourceTime when set, else Time.
func (f *Frame) Timestamp() time.Time {
	if !f.SourceTime.IsZero() {
		return f.SourceTime
	}
	return f.Time
}
