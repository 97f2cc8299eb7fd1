package pentecost

// Error codes of the real-time protocol, in addition to those in error.go.
// Each is a reply error: the connection stays open.
const (
	// EINVALIDMESSAGE: a client message is not a JSON object, or a field has
	// the wrong type.
	EINVALIDMESSAGE = "INVALID_MESSAGE"
	// EUNKNOWNACTION: a client message's action is missing or unknown.
	EUNKNOWNACTION = "UNKNOWN_ACTION"
	// EACTIONNOTALLOWED: the action is not for this connection's role (a
	// listener sending audio).
	EACTIONNOTALLOWED = "ACTION_NOT_ALLOWED"
	// EINVALIDAUDIO: an audio chunk is outside MinAudioChunk–MaxAudioChunk
	// or its base64 does not decode.
	EINVALIDAUDIO = "INVALID_AUDIO_CHUNK"
)
