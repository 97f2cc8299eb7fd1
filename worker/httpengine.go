package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Retry is how an HTTP engine retries: a rate limit (429), a server error
// (5xx), a network error or an attempt that took longer than Timeout is
// tried again after an exponential backoff with jitter (or the server's
// Retry-After, when it sends one), up to Attempts times in all.
type Retry struct {
	Attempts   int
	Timeout    time.Duration // per attempt
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// DefaultRetry suits a live talk: an utterance not translated within a few
// seconds is not worth waiting for.
var DefaultRetry = Retry{Attempts: 3, Timeout: 10 * time.Second, MinBackoff: 250 * time.Millisecond, MaxBackoff: 2 * time.Second}

// HTTPError is an engine's answer that was not a success.
type HTTPError struct {
	Engine string
	Status int
	// Body is the start of the response. It is kept out of Error, and so
	// out of the logs: an engine may echo the text it was sent.
	Body string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("%s: HTTP %d", e.Engine, e.Status)
}

func retryable(status int) bool { return status == http.StatusTooManyRequests || status >= 500 }

// do sends the request newReq builds, retrying as r says, and returns the
// body of the first success.
func (r Retry) do(ctx context.Context, c *http.Client, engine string, newReq func(context.Context) (*http.Request, error)) ([]byte, error) {
	if c == nil {
		c = http.DefaultClient
	}
	attempts := max(r.Attempts, 1)
	var last error
	for i := 0; i < attempts; i++ {
		var wait time.Duration
		body, err := r.once(ctx, c, newReq)
		if err == nil {
			return body, nil
		}
		var he *HTTPError
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.As(err, &he):
			he.Engine = engine
			if !retryable(he.Status) {
				return nil, he
			}
			wait = r.backoff(i)
			if ra, ok := err.(retryAfterError); ok && ra.after > 0 {
				wait = min(ra.after, r.MaxBackoff)
			}
		default:
			wait = r.backoff(i)
		}
		last = err
		if i == attempts-1 {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	var ra retryAfterError
	if errors.As(last, &ra) {
		last = ra.HTTPError
	}
	return nil, fmt.Errorf("%s: %d attempts: %w", engine, attempts, last)
}

// retryAfterError is an HTTPError whose response said when to come back.
type retryAfterError struct {
	*HTTPError
	after time.Duration
}

func (e retryAfterError) Unwrap() error { return e.HTTPError }

func (r Retry) once(ctx context.Context, c *http.Client, newReq func(context.Context) (*http.Request, error)) ([]byte, error) {
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	req, err := newReq(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		he := &HTTPError{Status: resp.StatusCode, Body: snippet(body)}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			return nil, retryAfterError{he, time.Duration(s) * time.Second}
		}
		return nil, he
	}
	return body, nil
}

// backoff is the wait before attempt i+1: MinBackoff doubled each time up
// to MaxBackoff, the upper half of it random so that workers spread out.
func (r Retry) backoff(i int) time.Duration {
	d := r.MinBackoff << min(i, 16)
	if r.MaxBackoff > 0 && d > r.MaxBackoff {
		d = r.MaxBackoff
	}
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// OpenAI is a recogniser and synthesiser speaking the OpenAI speech API
// (POST /audio/transcriptions, POST /audio/speech), which OpenAI and many
// self-hosted servers offer.
type OpenAI struct {
	// BaseURL includes the version, e.g. https://host/v1.
	BaseURL string
	// APIKey is sent as a bearer token when set.
	APIKey string
	// TranscriptionModel and SpeechModel name the models, e.g.
	// "whisper-1" and "tts-1".
	TranscriptionModel, SpeechModel string
	// Voices maps languages to voices; default "alloy".
	Voices map[string]string
	Retry  Retry
	Client *http.Client
}

// NewOpenAI returns an OpenAI engine with common model names.
func NewOpenAI(baseURL, apiKey string) *OpenAI {
	return &OpenAI{BaseURL: strings.TrimRight(baseURL, "/"), APIKey: apiKey, TranscriptionModel: "whisper-1",
		SpeechModel: "tts-1", Voices: map[string]string{}, Retry: DefaultRetry}
}

// Name implements Recognizer and Synthesizer.
func (o *OpenAI) Name() string { return "openai" }

func (o *OpenAI) auth(r *http.Request) {
	if o.APIKey != "" {
		r.Header.Set("Authorization", "Bearer "+o.APIKey)
	}
}

// Recognize implements Recognizer: the utterance goes up as a WAV file.
func (o *OpenAI) Recognize(ctx context.Context, pcm []int16, lang string) (string, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", "utterance.wav")
	if err != nil {
		return "", err
	}
	if _, err := fw.Write(EncodeWAV(pcm, SampleRate)); err != nil {
		return "", err
	}
	for k, v := range map[string]string{"model": o.TranscriptionModel, "language": lang, "response_format": "json"} {
		if err := mw.WriteField(k, v); err != nil {
			return "", err
		}
	}
	if err := mw.Close(); err != nil {
		return "", err
	}
	resp, err := o.Retry.do(ctx, o.Client, "openai transcriptions", func(ctx context.Context) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, o.BaseURL+"/audio/transcriptions", bytes.NewReader(body.Bytes()))
		if err != nil {
			return nil, err
		}
		r.Header.Set("Content-Type", mw.FormDataContentType())
		o.auth(r)
		return r, nil
	})
	if err != nil {
		return "", err
	}
	var out struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		return "", fmt.Errorf("openai transcriptions: %w", err)
	}
	return out.Text, nil
}

// Synthesize implements Synthesizer: it asks for WAV and resamples it.
func (o *OpenAI) Synthesize(ctx context.Context, text, lang string) ([]int16, error) {
	voice := o.Voices[lang]
	if voice == "" {
		voice = "alloy"
	}
	req, _ := json.Marshal(map[string]string{"model": o.SpeechModel, "input": text, "voice": voice, "response_format": "wav"})
	resp, err := o.Retry.do(ctx, o.Client, "openai speech", func(ctx context.Context) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, o.BaseURL+"/audio/speech", bytes.NewReader(req))
		if err != nil {
			return nil, err
		}
		r.Header.Set("Content-Type", "application/json")
		o.auth(r)
		return r, nil
	})
	if err != nil {
		return nil, err
	}
	s, rate, err := DecodeWAV(resp)
	if err != nil {
		return nil, fmt.Errorf("openai speech: %w", err)
	}
	return Resample(s, rate, SampleRate), nil
}

// LibreTranslate is a translator speaking LibreTranslate's API
// (POST /translate).
type LibreTranslate struct {
	// URL is the server, e.g. http://localhost:5000.
	URL    string
	APIKey string
	Retry  Retry
	Client *http.Client
}

// NewLibreTranslate returns a LibreTranslate engine.
func NewLibreTranslate(url, apiKey string) *LibreTranslate {
	return &LibreTranslate{URL: strings.TrimRight(url, "/"), APIKey: apiKey, Retry: DefaultRetry}
}

// Name implements Translator.
func (l *LibreTranslate) Name() string { return "libretranslate" }

// Translate implements Translator.
func (l *LibreTranslate) Translate(ctx context.Context, text, from, to string) (string, error) {
	m := map[string]string{"q": text, "source": from, "target": to, "format": "text"}
	if l.APIKey != "" {
		m["api_key"] = l.APIKey
	}
	req, _ := json.Marshal(m)
	resp, err := l.Retry.do(ctx, l.Client, "libretranslate", func(ctx context.Context) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, l.URL+"/translate", bytes.NewReader(req))
		if err != nil {
			return nil, err
		}
		r.Header.Set("Content-Type", "application/json")
		return r, nil
	})
	if err != nil {
		return "", err
	}
	var out struct {
		TranslatedText string `json:"translatedText"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		return "", fmt.Errorf("libretranslate: %w", err)
	}
	return out.TranslatedText, nil
}

var (
	_ Recognizer  = (*OpenAI)(nil)
	_ Synthesizer = (*OpenAI)(nil)
	_ Translator  = (*LibreTranslate)(nil)
)
