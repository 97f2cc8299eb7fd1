package realtime

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/pentecost/pentecost"
	pthttp "github.com/pentecost/pentecost/http"
)

// Message is a client message: {"action": …} and the fields any action may
// carry. Fields an action does not use are ignored.
type Message struct {
	Action         string   `json:"action"`
	SessionID      string   `json:"sessionId,omitempty"`
	AudioData      string   `json:"audioData,omitempty"`
	SequenceNumber *uint64  `json:"sequenceNumber,omitempty"`
	Command        string   `json:"command,omitempty"`
	VolumeLevel    *float64 `json:"volumeLevel,omitempty"`
	State          *string  `json:"state,omitempty"`
	TargetLanguage string   `json:"targetLanguage,omitempty"`
	// LastSequenceNumber is used by workers' subscribeSession.
	LastSequenceNumber *uint64 `json:"lastSequenceNumber,omitempty"`
	Text               string  `json:"text,omitempty"`
	Final              bool    `json:"final,omitempty"`
	// Exclusive and PreviousConnectionID are used by workers' claimLanguage.
	Exclusive            bool   `json:"exclusive,omitempty"`
	PreviousConnectionID string `json:"previousConnectionId,omitempty"`
	// Languages is a worker's offerLanguages offer, checked by the action
	// (raw, so that a malformed offer is that action's error and never
	// another action's).
	Languages json.RawMessage `json:"languages,omitempty"`
	// SourceTimestamp is publishAudio's capture time of the source speech,
	// Unix ms. Raw: a value of any other type is ignored, never an error.
	SourceTimestamp json.RawMessage `json:"sourceTimestamp,omitempty"`
	// Codec is publishAudio's codec of audioData: "pcm" (or absent) or "opus".
	Codec string `json:"codec,omitempty"`
	// Tiers is offerLanguages' quality tiers (raw, checked by the action).
	Tiers json.RawMessage `json:"tiers,omitempty"`
	// Stage, ErrorCode and LatencyMs are reportLanguageStatus's; LatencyMs
	// raw, so that a bad value is that action's error.
	Stage     string          `json:"stage,omitempty"`
	ErrorCode string          `json:"errorCode,omitempty"`
	LatencyMs json.RawMessage `json:"latencyMs,omitempty"`
}

// DecodeMessage parses a client's text message. It never panics on any
// input. Errors: EINVALIDMESSAGE (not a JSON object, or a field of the
// wrong type), EUNKNOWNACTION (no action).
func DecodeMessage(p []byte) (*Message, error) {
	p = bytes.TrimSpace(p)
	if len(p) == 0 || p[0] != '{' {
		return nil, pentecost.Errorf(pentecost.EINVALIDMESSAGE, "Message must be a JSON object.")
	}
	var m Message
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, pentecost.Errorf(pentecost.EINVALIDMESSAGE, "Message is not valid JSON or a field has the wrong type.")
	}
	if m.Action == "" {
		return nil, pentecost.Errorf(pentecost.EUNKNOWNACTION, "Message has no action.")
	}
	return &m, nil
}

// obj is an outgoing JSON message. Control messages are rare, so a map and
// encoding/json are clear enough; audio has its own encoder (wire.go).
type obj map[string]any

// jsonMsg encodes o as a text frame, adding the timestamp.
func (s *Server) jsonMsg(o obj) *wsMsg {
	if _, ok := o["timestamp"]; !ok {
		o["timestamp"] = s.Now().UnixMilli()
	}
	var b bytes.Buffer
	b.Write(make([]byte, maxFrameHeader))
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(o); err != nil {
		// Only our own values are encoded; a failure is a bug worth seeing.
		s.Logger.Error("encode message", logError, err)
		return nil
	}
	buf := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	return newMsg(opText, buf, false)
}

// send queues a JSON message on c.
func (c *conn) send(o obj) {
	if m := c.srv.jsonMsg(o); m != nil {
		c.enqueue(m)
	}
}

// statusCodes gives the real-time codes their HTTP statuses; the rest come
// from the HTTP API's table so that both agree.
var statusCodes = map[string]int{
	pentecost.EINVALIDMESSAGE:   http.StatusBadRequest,
	pentecost.EUNKNOWNACTION:    http.StatusBadRequest,
	pentecost.EACTIONNOTALLOWED: http.StatusForbidden,
	pentecost.EINVALIDAUDIO:     http.StatusBadRequest,
}

func httpStatus(code string) int {
	if s, ok := statusCodes[code]; ok {
		return s
	}
	return pthttp.StatusCode(code)
}

// errorObj builds an error message. Internal errors are logged by the
// caller; only their generic text reaches the client.
func errorObj(err error, sessionID string) obj {
	code := pentecost.ErrorCode(err)
	o := obj{
		"type":       "error",
		"code":       code,
		"message":    pentecost.ErrorMessage(err),
		"httpStatus": httpStatus(code),
		"sessionId":  clip(sessionID, 64), // the client's own words: not echoed at any length
	}
	if d := pentecost.ErrorRetryAfter(err); d > 0 {
		o["retryAfter"] = int(math.Ceil(d.Seconds()))
	}
	if d := pentecost.ErrorDetails(err); d != nil {
		o["details"] = d
	}
	return o
}

// replyError sends a reply error; the connection stays open.
func (c *conn) replyError(err error) {
	if pentecost.ErrorCode(err) == pentecost.EINTERNAL {
		c.log.Error("internal error", logError, err)
	}
	c.send(errorObj(err, c.sessionID()))
}

func (c *conn) sessionID() string {
	if c.session != nil {
		return c.session.id
	}
	return ""
}

// seconds renders a duration as whole seconds for clients.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// clip shortens s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
