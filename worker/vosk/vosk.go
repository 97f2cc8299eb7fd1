// Package vosk is a streaming recogniser that speaks the WebSocket
// protocol of the self-hosted Vosk server (alphacep/vosk-server,
// websocket/asr_server.py), which runs offline on a venue's own machine.
//
// The protocol, as the server's code has it (the shapes are recorded in
// testdata/): the client sends {"config":{"sample_rate":16000,…}} first,
// then binary chunks of 16-bit little-endian PCM, then exactly the text
// {"eof" : 1} (the server compares the whole string; any other spelling is
// taken for audio). The server answers every audio chunk with one message,
// {"partial":"…"} or, at an endpoint, {"result":[{"conf","end","start",
// "word"}…],"text":"…"}, answers eof with the last final, and closes.
package vosk

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gobwas/ws"

	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/internal/wsclient"
)

// Name is the engine's name in metrics and logs.
const Name = "vosk"

// Config configures a Recognizer.
type Config struct {
	// URL is the Vosk server's WebSocket address, e.g.
	// ws://127.0.0.1:2700; it serves every language without one of its
	// own in URLs. A Vosk server runs one model, hence one language.
	URL string
	// URLs maps a language to the server running that language's model.
	URLs map[string]string
	// StallTimeout is how long a stream waits for the server's answer to
	// audio it sent (or for the end after CloseSend) before it fails with
	// engine.ErrTimeout. Default 10 s.
	StallTimeout time.Duration
	// DialTimeout bounds connecting and the WebSocket handshake. Default
	// 10 s.
	DialTimeout time.Duration
	// Logger receives the engine's logs. Default slog.Default().
	Logger *slog.Logger
}

// Recognizer is an engine.StreamingRecognizer backed by Vosk servers.
type Recognizer struct {
	cfg Config
	log *slog.Logger
}

var _ engine.StreamingRecognizer = (*Recognizer)(nil)

// New returns a Recognizer; it fails when no server is configured.
func New(c Config) (*Recognizer, error) {
	if c.URL == "" && len(c.URLs) == 0 {
		return nil, errors.New("vosk: no server URL configured (vosk.url)")
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 10 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Recognizer{cfg: c, log: log.With("engine", Name)}, nil
}

// Name returns "vosk".
func (r *Recognizer) Name() string { return Name }

// Stream connects to the server for lang and sends the configuration. It
// fails with engine.ErrUnsupported when no server serves lang, and with
// ErrUnavailable, ErrRefused, ErrThrottled (RetryAfter from the server's
// Retry-After) or ErrTimeout when the connection cannot be had.
func (r *Recognizer) Stream(ctx context.Context, lang string) (engine.RecognitionStream, error) {
	url := r.cfg.URLs[lang]
	if url == "" {
		url = r.cfg.URL
	}
	if url == "" {
		return nil, &engine.Error{Engine: Name, Code: engine.ErrUnsupported, Err: errors.New("no Vosk server for language " + lang)}
	}
	c, err := wsclient.Dial(ctx, url, http.Header{}, r.cfg.DialTimeout)
	if err != nil {
		r.log.Warn("connect failed", "err", err)
		return nil, wsclient.DialError(ctx, Name, err)
	}
	c.WriteMu.Lock()
	err = c.Write(ws.OpText, configMessage, r.cfg.StallTimeout)
	c.WriteMu.Unlock()
	if err != nil {
		c.Close()
		return nil, &engine.Error{Engine: Name, Code: engine.ErrUnavailable, Err: err}
	}
	return startStream(ctx, c, r.cfg.StallTimeout, r.log), nil
}
