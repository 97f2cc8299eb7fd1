// Package deepgram is a streaming recogniser over Deepgram's live
// streaming API (the /v1/listen WebSocket): 16 kHz linear16 audio in as
// binary messages, Results messages out with interim (is_final false) and
// final (is_final true) transcripts, {"type":"CloseStream"} to finish and
// {"type":"KeepAlive"} while no audio flows. The message shapes are
// recorded in testdata/.
//
// Deepgram says nothing of the stability of interim words, so interim
// hypotheses have Stable 0; its finals come every few seconds of speech
// (and at every pause), which is where the pipeline gets stable text.
package deepgram

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/internal/wsclient"
)

// Name is the engine's name in metrics and logs.
const Name = "deepgram"

// DefaultURL is Deepgram's hosted live streaming endpoint.
const DefaultURL = "wss://api.deepgram.com/v1/listen"

// Config configures a Recognizer.
type Config struct {
	// URL is the streaming endpoint. Default DefaultURL.
	URL string
	// APIKey is sent as "Authorization: Token KEY"; required with the
	// hosted endpoint.
	APIKey string
	// Model is Deepgram's model, e.g. "nova-3". Default "nova-3".
	Model string
	// Languages maps the session's language codes to Deepgram's (e.g.
	// "en" → "en-US", or "multi" for nova-3's code-switching model); a
	// language not in the map is passed as it is.
	Languages map[string]string
	// StallTimeout is how long a stream waits for the service while it is
	// owed an answer — more than two seconds of the audio sent are not yet
	// covered by a Results message, or CloseSend was called — before it
	// fails with engine.ErrTimeout. Default 10 s.
	StallTimeout time.Duration
	// KeepAlive is how often a KeepAlive message is sent while no audio is
	// (the service closes after 10 s without either). Default 3 s;
	// negative: never.
	KeepAlive time.Duration
	// DialTimeout bounds connecting and the WebSocket handshake. Default
	// 10 s.
	DialTimeout time.Duration
	// Logger receives the engine's logs. Default slog.Default().
	Logger *slog.Logger
}

// Recognizer is an engine.StreamingRecognizer backed by Deepgram.
type Recognizer struct {
	cfg Config
	log *slog.Logger
}

var _ engine.StreamingRecognizer = (*Recognizer)(nil)

// New returns a Recognizer; it fails without an API key for the hosted
// endpoint, or with a URL it cannot read.
func New(c Config) (*Recognizer, error) {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return nil, errors.New("deepgram: deepgram.url must be a ws:// or wss:// URL")
	}
	if c.APIKey == "" && c.URL == DefaultURL {
		return nil, errors.New("deepgram: deepgram.api_key is required")
	}
	if c.Model == "" {
		c.Model = "nova-3"
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 10 * time.Second
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 3 * time.Second
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

// Name returns "deepgram".
func (r *Recognizer) Name() string { return Name }

// listenURL is the endpoint with the stream's parameters.
func (r *Recognizer) listenURL(lang string) string {
	u, _ := url.Parse(r.cfg.URL) // checked by New
	q := u.Query()
	q.Set("encoding", "linear16")
	q.Set("sample_rate", "16000")
	q.Set("channels", "1")
	q.Set("interim_results", "true")
	q.Set("punctuate", "true")
	q.Set("model", r.cfg.Model)
	if l := r.cfg.Languages[lang]; l != "" {
		lang = l
	}
	q.Set("language", lang)
	u.RawQuery = q.Encode()
	return u.String()
}

// Stream opens a live transcription for lang. It fails with ErrRefused
// (bad key or parameters, HTTP 400/401/403), ErrThrottled (HTTP 429, with
// RetryAfter from the Retry-After header), ErrUnavailable or ErrTimeout
// when the connection cannot be had.
func (r *Recognizer) Stream(ctx context.Context, lang string) (engine.RecognitionStream, error) {
	h := http.Header{}
	if r.cfg.APIKey != "" {
		h.Set("Authorization", "Token "+r.cfg.APIKey)
	}
	c, err := wsclient.Dial(ctx, r.listenURL(lang), h, r.cfg.DialTimeout)
	if err != nil {
		r.log.Warn("connect failed", "err", err)
		return nil, wsclient.DialError(ctx, Name, err)
	}
	return startStream(ctx, c, r.cfg, r.log), nil
}
