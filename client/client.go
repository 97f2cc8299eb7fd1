// Package client is a Go client of Pentecost's real-time protocol
// (docs/protocol.md): a Listener that hears a session in one language, a
// Speaker that broadcasts into a session, and a Worker that turns a
// session's source audio into other languages.
//
// Each client keeps one WebSocket connection open for as long as it runs and
// hides the protocol's housekeeping from its user:
//
//   - heartbeats at the protocol's interval, and a dead connection detected
//     when nothing arrives for three of them;
//   - reconnection with exponential backoff (250 ms doubling to 10 s, with
//     jitter), resuming where the client left off: a Listener asks for the
//     frames after the last sequence number it delivered, a Worker
//     resubscribes and claims its languages again;
//   - the server's connectionRefreshRequired: the client opens the refresh
//     connection, presenting the refresh ticket the server gave the old one
//     (so that the server counts it in the old one's place), switches to it
//     when connectionRefreshComplete arrives and
//     closes the old one with 1000, delivering every sequence number exactly
//     once across the switch;
//   - the close codes that mean "stop" (see Classify).
//
// Every client is used the same way: create it with NewListener, NewSpeaker
// or NewWorker, set its exported fields (callbacks included), call Open, which
// returns once the server accepted the connection (or with the server's
// reason for refusing it, an *Error), and Close at the end. Done is closed
// when the client stops on its own (the session ended, or the server said
// stop); Err then says why.
//
// Callbacks (OnAudio, OnEvent, …) are called from the client's goroutines,
// one at a time, never concurrently with each other. They should return
// quickly: a callback that blocks delays every later message. The Data of a
// Frame is only valid during the callback that receives it; copy it to keep
// it. That keeps the audio path free of allocations in binary mode.
package client

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Close codes the server uses (docs/protocol.md, section 5).
const (
	CloseNormal      = 1000 // the session ended: stop
	CloseGoingAway   = 1001 // the server is shutting down: reconnect at once
	CloseProtocol    = 1002 // broken WebSocket framing
	ClosePolicy      = 1008 // join refused: stop (RATE_LIMIT_EXCEEDED: retry after RetryAfter)
	CloseTooBig      = 1009 // a message was too large: stop
	CloseInternal    = 1011 // internal error: reconnect with backoff
	CloseTryAgain    = 1013 // session full or a service unavailable: retry with backoff
	CloseIdle        = 4000 // nothing received for the heartbeat timeout: reconnect
	CloseSlow        = 4001 // the client fell too far behind: reconnect
	CloseMaxDuration = 4002 // the connection reached its maximum age: reconnect
	CloseReplaced    = 4003 // another speaker connection took over: stop
	// CloseTokenInvalid: the token no longer holds (account removed,
	// password changed, token expired): stop; reconnect only with a new one.
	CloseTokenInvalid = 4004
)

// Defaults of Options.
const (
	DefaultMinBackoff        = 250 * time.Millisecond
	DefaultMaxBackoff        = 10 * time.Second
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultDialTimeout       = 10 * time.Second
)

// maxMessage bounds what the client reads in one message: a worker's
// session list can be long, and audio is at most 32 KB (43 KB in base64).
const maxMessage = 4 << 20

// Log keys.
const (
	logURL    = "url"
	logCode   = "code"
	logError  = "error"
	logDelay  = "delay"
	logReason = "reason"
)

// Options are the connection settings every client shares. The zero value
// of each field means its default.
type Options struct {
	// Logger receives connection events (connects, drops, refreshes) at
	// debug and warning level. Tokens are never logged. Default: discard.
	Logger *slog.Logger

	// Header is added to every handshake (for example a User-Agent).
	Header http.Header
	// Origin, when set, is sent as the Origin header. Servers check it
	// against their allowlist; clients without one are allowed.
	Origin string
	// HTTPClient performs handshakes (for custom TLS or proxies).
	HTTPClient *http.Client

	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts: the first waits about MinBackoff, each next one twice as
	// long, up to MaxBackoff, each with random jitter.
	MinBackoff, MaxBackoff time.Duration
	// HeartbeatInterval is how often the client sends a heartbeat. A
	// connection on which nothing arrives for three intervals is
	// considered dead and replaced.
	HeartbeatInterval time.Duration
	// DialTimeout bounds one connection attempt, handshake and the
	// server's first reply included.
	DialTimeout time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(DefaultMaxBackoff, o.MinBackoff)
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
}

// Error is an error message from the server: a reply error (the connection
// stays open; it reaches OnError) or the reason a connection was refused
// (returned by Open, or inside a *CloseError).
type Error struct {
	// Code is the protocol's error code, e.g. "SESSION_NOT_FOUND".
	Code string
	// Message is a sentence meant for people.
	Message string
	// HTTPStatus is the status the HTTP API would use for Code.
	HTTPStatus int
	// RetryAfter is how long to wait before trying again (rate limits).
	RetryAfter time.Duration
	// SessionID is the session the error is about, if any.
	SessionID string
	// TargetLanguage and Action name the worker request the error answers
	// (e.g. "es" and "claimLanguage"), when the server says.
	TargetLanguage string
	Action         string
}

// Error implements error.
func (e *Error) Error() string { return "pentecost: " + e.Code + ": " + e.Message }

// CloseError reports a connection the server closed, with the error message
// that came before the close, if any.
type CloseError struct {
	// Code is the WebSocket close code, or -1 when the connection was lost
	// without a close frame.
	Code int
	// Reason is the close frame's reason text.
	Reason string
	// Err is the server's error message before the close, or nil.
	Err *Error
}

// Error implements error.
func (e *CloseError) Error() string {
	s := fmt.Sprintf("pentecost: connection closed (%d", e.Code)
	if e.Reason != "" {
		s += " " + e.Reason
	}
	s += ")"
	if e.Err != nil {
		s += ": " + e.Err.Code + ": " + e.Err.Message
	}
	return s
}

// Unwrap returns the server's error message, so that errors.As finds it.
func (e *CloseError) Unwrap() error {
	if e.Err == nil {
		return nil
	}
	return e.Err
}

// HandshakeError reports a WebSocket handshake the server refused with an
// HTTP status (403 for an Origin not allowed) or that failed on the network
// (Status 0).
type HandshakeError struct {
	Status int
	Err    error
}

// Error implements error.
func (e *HandshakeError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("pentecost: handshake refused with HTTP %d: %v", e.Status, e.Err)
	}
	return "pentecost: connect: " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *HandshakeError) Unwrap() error { return e.Err }

// ErrClosed is returned by methods of a client that was closed or stopped.
var ErrClosed = errors.New("pentecost: client closed")

// ErrSessionEnded is what Err returns after the session ended normally.
var ErrSessionEnded = errors.New("pentecost: session ended")

// Decision is what a client should do after a connection ended.
type Decision struct {
	// Retry is false when the client must stop.
	Retry bool
	// Immediately means reconnect without backoff (the server is going away).
	Immediately bool
	// After is the least time to wait, when the server said (retryAfter).
	After time.Duration
}

// Classify decides, in one place, whether a client reconnects after a
// connection ended: err is what the connection ended with (a *CloseError,
// a *HandshakeError, or a network error). It follows the table in
// docs/protocol.md, section 5:
//
//   - stop on 1000 (the session ended), 1009, 4003, 4004, on 1008 unless the
//     reason was RATE_LIMIT_EXCEEDED (then retry after RetryAfter), and on a
//     handshake refused with a 4xx status other than 429;
//   - reconnect at once on 1001;
//   - reconnect with backoff on everything else: 1011, 1013, 4000–4002, a
//     connection lost without a close frame, a network error.
func Classify(err error) Decision {
	var he *HandshakeError
	if errors.As(err, &he) {
		if he.Status >= 400 && he.Status < 500 && he.Status != http.StatusTooManyRequests {
			return Decision{}
		}
		return Decision{Retry: true}
	}
	var ce *CloseError
	if !errors.As(err, &ce) {
		return Decision{Retry: true}
	}
	switch ce.Code {
	case CloseNormal, CloseTooBig, CloseReplaced, CloseTokenInvalid:
		return Decision{}
	case ClosePolicy:
		if ce.Err != nil && ce.Err.Code == "RATE_LIMIT_EXCEEDED" {
			return Decision{Retry: true, After: ce.Err.RetryAfter}
		}
		return Decision{}
	case CloseGoingAway:
		return Decision{Retry: true, Immediately: true}
	}
	return Decision{Retry: true}
}

// backoff computes reconnection delays: exponential with "equal jitter"
// (half fixed, half random), so that many clients dropped at once by one
// server do not all come back in the same instant.
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	d := b.min << min(b.n, 30)
	if d > b.max || d <= 0 {
		d = b.max
	}
	b.n++
	half := d / 2
	return half + rand.N(half+1)
}

func (b *backoff) reset() { b.n = 0 }

// wsURL turns a server address (http, https, ws or wss; with or without the
// /ws path) into the WebSocket endpoint with the given query.
func wsURL(server string, q url.Values) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("pentecost: invalid server URL: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("pentecost: server URL must be http(s) or ws(s), not %q", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("pentecost: server URL has no host")
	}
	if !strings.HasSuffix(u.Path, "/ws") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/ws"
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}
