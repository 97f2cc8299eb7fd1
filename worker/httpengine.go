package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pentecost/pentecost/worker/engine"
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
	// Now is the clock Retry-After dates are read against; time.Now when
	// nil.
	Now func() time.Time
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
// body of the first success. Its errors are *engine.Error (wrapping the
// last *HTTPError, if any).
func (r Retry) do(ctx context.Context, c *http.Client, engine string, newReq func(context.Context) (*http.Request, error)) ([]byte, error) {
	var body []byte
	err := r.loop(ctx, engine, func() error {
		var err error
		body, err = r.once(ctx, c, newReq)
		return err
	})
	return body, err
}

// open is do for a response read as it arrives: it retries until the
// server answers 2xx, and returns that response with its body unread and
// the function that releases it. Timeout bounds each attempt's wait for
// the answer and then the whole body.
func (r Retry) open(ctx context.Context, c *http.Client, name string, newReq func(context.Context) (*http.Request, error)) (*http.Response, context.CancelFunc, error) {
	if c == nil {
		c = http.DefaultClient
	}
	var (
		resp   *http.Response
		cancel context.CancelFunc = func() {}
	)
	err := r.loop(ctx, name, func() error {
		actx, acancel := ctx, context.CancelFunc(func() {})
		if r.Timeout > 0 {
			actx, acancel = context.WithTimeout(ctx, r.Timeout)
		}
		req, err := newReq(actx)
		if err != nil {
			acancel()
			return err
		}
		res, err := c.Do(req)
		if err != nil {
			acancel()
			return err
		}
		if res.StatusCode/100 != 2 {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
			res.Body.Close()
			acancel()
			return r.statusError(res, b)
		}
		resp, cancel = res, func() { res.Body.Close(); acancel() }
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return resp, cancel, nil
}

// loop runs attempt up to r.Attempts times, waiting between attempts, and
// turns the outcome into an *engine.Error.
func (r Retry) loop(ctx context.Context, name string, attempt func() error) error {
	attempts := max(r.Attempts, 1)
	var last error
	for i := 0; i < attempts; i++ {
		var wait time.Duration
		err := attempt()
		if err == nil {
			return nil
		}
		var he *HTTPError
		switch {
		case ctx.Err() != nil:
			return &engine.Error{Engine: name, Code: contextCode(ctx.Err()), Err: ctx.Err()}
		case errors.As(err, &he):
			he.Engine = name
			if !retryable(he.Status) {
				return &engine.Error{Engine: name, Code: engine.StatusCode(he.Status), Err: he}
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
			return &engine.Error{Engine: name, Code: contextCode(ctx.Err()), Err: ctx.Err()}
		case <-t.C:
		}
	}
	e := &engine.Error{Engine: name, Code: engine.ErrUnavailable, Err: fmt.Errorf("%d attempts: %w", attempts, last)}
	var ra retryAfterError
	var he *HTTPError
	switch {
	case errors.As(last, &ra):
		e.Code, e.RetryAfter, e.Err = engine.StatusCode(ra.Status), ra.after, fmt.Errorf("%d attempts: %w", attempts, ra.HTTPError)
	case errors.As(last, &he):
		e.Code = engine.StatusCode(he.Status)
	case errors.Is(last, context.DeadlineExceeded):
		e.Code = engine.ErrTimeout
	}
	return e
}

func contextCode(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return engine.ErrTimeout
	}
	return engine.ErrInternal
}

// retryAfterError is an HTTPError whose response said when to come back.
type retryAfterError struct {
	*HTTPError
	after time.Duration
}

func (e retryAfterError) Unwrap() error { return e.HTTPError }

func (r Retry) once(ctx context.Context, c *http.Client, newReq func(context.Context) (*http.Request, error)) ([]byte, error) {
	if c == nil {
		c = http.DefaultClient
	}
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
		return nil, r.statusError(resp, body)
	}
	return body, nil
}

// statusError is the error of a response that is not a success, with the
// wait its Retry-After asks for.
func (r Retry) statusError(resp *http.Response, body []byte) error {
	he := &HTTPError{Status: resp.StatusCode, Body: snippet(body)}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if d := engine.RetryAfter(resp.Header.Get("Retry-After"), now()); d > 0 {
		return retryAfterError{he, d}
	}
	return he
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
// self-hosted servers offer. Recognition and synthesis may each have a
// server and key of their own (a whisper server and a TTS server).
type OpenAI struct {
	// BaseURL includes the version, e.g. https://host/v1; APIKey is sent
	// as a bearer token when set. Both serve a role whose Endpoint leaves
	// them empty.
	BaseURL string
	APIKey  string
	// STT and TTS are recognition's and synthesis's own endpoints.
	STT, TTS Endpoint
	// TranscriptionModel and SpeechModel name the models, e.g.
	// "whisper-1" and "tts-1".
	TranscriptionModel, SpeechModel string
	// Voices maps languages to voices; default "alloy".
	Voices map[string]string
	// StreamFormat is what SynthesizeStream asks for: "pcm" (raw samples
	// at PCMRate, read as they arrive; the default) or "wav" (for servers
	// without "pcm": the whole answer, then one emit).
	StreamFormat string
	// PCMRate is the rate of the server's "pcm" answers: 24000 for OpenAI
	// and Kokoro; a Piper voice's own rate (often 22050) for Piper-based
	// servers.
	PCMRate int
	Retry   Retry
	Client  *http.Client
}

// Endpoint is where one role's requests go.
type Endpoint struct {
	// URL is the API's base with its version, e.g. http://stt:8000/v1.
	URL string
	// APIKey is its bearer token ("" : the OpenAI engine's APIKey).
	APIKey string
	// Path, when set, replaces the request's path: an absolute one
	// ("/inference", whisper.cpp's server) the URL's path too, a relative
	// one is joined to the URL.
	Path string
}

// NewOpenAI returns an OpenAI engine with common model names.
func NewOpenAI(baseURL, apiKey string) *OpenAI {
	return &OpenAI{BaseURL: strings.TrimRight(baseURL, "/"), APIKey: apiKey, TranscriptionModel: "whisper-1",
		SpeechModel: "tts-1", Voices: map[string]string{}, StreamFormat: "pcm", PCMRate: SpeechPCMRate, Retry: DefaultRetry}
}

// Name implements Recognizer and Synthesizer.
func (o *OpenAI) Name() string { return "openai" }

// endpoint returns the URL and key of a role's request to path (relative
// to the base, e.g. "/audio/speech").
func (o *OpenAI) endpoint(e Endpoint, path string) (string, string, error) {
	base, key := strings.TrimRight(e.URL, "/"), e.APIKey
	if base == "" {
		base = o.BaseURL
	}
	if key == "" {
		key = o.APIKey
	}
	if base == "" {
		return "", "", fmt.Errorf("openai: no URL for %s", path)
	}
	if e.Path == "" {
		return base + path, key, nil
	}
	u, err := url.Parse(base + "/")
	if err != nil {
		return "", "", fmt.Errorf("openai: %w", err)
	}
	ref, err := url.Parse(e.Path)
	if err != nil {
		return "", "", fmt.Errorf("openai: %w", err)
	}
	return u.ResolveReference(ref).String(), key, nil
}

// TranscriptionURL is where Recognize posts the audio.
func (o *OpenAI) TranscriptionURL() string {
	u, _, _ := o.endpoint(o.STT, "/audio/transcriptions")
	return u
}

// SpeechURL is where Synthesize posts the text.
func (o *OpenAI) SpeechURL() string {
	u, _, _ := o.endpoint(o.TTS, "/audio/speech")
	return u
}

func auth(r *http.Request, key string) {
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
}

// Recognize implements Recognizer: the utterance goes up as a WAV file.
// whisper.cpp's server takes the same form at /inference (its own fields,
// temperature and response_format, have the same meaning).
func (o *OpenAI) Recognize(ctx context.Context, pcm []int16, lang string) (string, error) {
	u, key, err := o.endpoint(o.STT, "/audio/transcriptions")
	if err != nil {
		return "", err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", "utterance.wav")
	if err != nil {
		return "", err
	}
	if _, err := fw.Write(EncodeWAV(pcm, SampleRate)); err != nil {
		return "", err
	}
	for _, kv := range [][2]string{{"model", o.TranscriptionModel}, {"language", lang}, {"response_format", "json"}, {"temperature", "0"}} {
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			return "", err
		}
	}
	if err := mw.Close(); err != nil {
		return "", err
	}
	resp, err := o.Retry.do(ctx, o.Client, "openai transcriptions", func(ctx context.Context) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body.Bytes()))
		if err != nil {
			return nil, err
		}
		r.Header.Set("Content-Type", mw.FormDataContentType())
		auth(r, key)
		return r, nil
	})
	if err != nil {
		return "", err
	}
	var out struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		return "", &engine.Error{Engine: "openai transcriptions", Code: engine.ErrBadResponse, Err: err}
	}
	return strings.TrimSpace(out.Text), nil
}

// speechRequest is the body of POST /audio/speech.
type speechRequest struct {
	Model          string  `json:"model"`
	Input          string  `json:"input"`
	Voice          string  `json:"voice"`
	ResponseFormat string  `json:"response_format"`
	Speed          float64 `json:"speed,omitempty"`
}

func (o *OpenAI) speech(ctx context.Context, text, lang, format string, speed float64) (*http.Response, context.CancelFunc, error) {
	u, key, err := o.endpoint(o.TTS, "/audio/speech")
	if err != nil {
		return nil, nil, err
	}
	voice := o.Voices[lang]
	if voice == "" {
		voice = "alloy"
	}
	req, _ := json.Marshal(speechRequest{Model: o.SpeechModel, Input: text, Voice: voice, ResponseFormat: format, Speed: speed})
	return o.Retry.open(ctx, o.Client, "openai speech", func(ctx context.Context) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(req))
		if err != nil {
			return nil, err
		}
		r.Header.Set("Content-Type", "application/json")
		auth(r, key)
		return r, nil
	})
}

// Synthesize implements Synthesizer: it asks for WAV and resamples it.
func (o *OpenAI) Synthesize(ctx context.Context, text, lang string) ([]int16, error) {
	resp, done, err := o.speech(ctx, text, lang, "wav", 0)
	if err != nil {
		return nil, err
	}
	defer done()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &engine.Error{Engine: "openai speech", Code: readCode(err), Err: err}
	}
	s, rate, err := DecodeWAV(b)
	if err != nil {
		return nil, &engine.Error{Engine: "openai speech", Code: engine.ErrBadResponse, Err: err}
	}
	return Resample(s, rate, SampleRate), nil
}

// SpeechPCMRate is the rate of OpenAI's "pcm" format: raw 16-bit
// little-endian mono samples at 24 kHz, with no header.
const SpeechPCMRate = 24000

// Speed is the speech API's speed for a speaking rate relative to the
// speaker's usual one, within the API's 0.25–4; 0 (the API's default, 1)
// when the rate is unknown.
func Speed(p Prosody) float64 {
	if p.Rate <= 0 || math.IsNaN(p.Rate) {
		return 0
	}
	return math.Round(min(max(p.Rate, 0.25), 4)*100) / 100
}

// SynthesizeStream implements StreamingSynthesizer: it asks for "pcm" and
// emits the samples, resampled to 16 kHz, as the body arrives, so the
// first words play while the server still speaks the rest. The speaker's
// rate becomes the request's speed (loudness is not in the API).
func (o *OpenAI) SynthesizeStream(ctx context.Context, text, lang string, p Prosody, emit func(pcm []int16) error) error {
	if o.StreamFormat == "wav" {
		resp, done, err := o.speech(ctx, text, lang, "wav", Speed(p))
		if err != nil {
			return err
		}
		defer done()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return &engine.Error{Engine: "openai speech", Code: readCode(err), Err: err}
		}
		s, rate, err := DecodeWAV(b)
		if err != nil {
			return &engine.Error{Engine: "openai speech", Code: engine.ErrBadResponse, Err: err}
		}
		return emit(Resample(s, rate, SampleRate))
	}
	resp, done, err := o.speech(ctx, text, lang, "pcm", Speed(p))
	if err != nil {
		return err
	}
	defer done()
	rate := o.PCMRate
	if rate <= 0 {
		rate = SpeechPCMRate
	}
	rs := newStreamResampler(rate, SampleRate)
	buf := make([]byte, 4800) // 100 ms at 24 kHz
	var odd []byte            // a sample split across reads
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			b := append(odd, buf[:n]...)
			whole := len(b) &^ 1
			odd = append([]byte(nil), b[whole:]...)
			if out := rs.push(PCM(b[:whole])); len(out) > 0 {
				if err := emit(out); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return &engine.Error{Engine: "openai speech", Code: contextCode(ctx.Err()), Err: ctx.Err()}
			}
			return &engine.Error{Engine: "openai speech", Code: readCode(rerr), Err: rerr}
		}
	}
	if out := rs.flush(); len(out) > 0 {
		return emit(out)
	}
	return nil
}

func readCode(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return engine.ErrTimeout
	}
	return engine.ErrUnavailable
}

// streamResampler is Resample over audio that arrives in pieces: it keeps
// the input that the filter of outputs still to come reaches back to, so
// the result matches resampling the whole at once.
type streamResampler struct {
	ratio, fc, half float64
	buf             []int16 // input from buf[0] = input sample base
	base            int     // index of buf[0] in the whole input
	next            int     // index of the next output sample
	total           int     // input samples pushed
}

func newStreamResampler(from, to int) *streamResampler {
	ratio := float64(from) / float64(to)
	return &streamResampler{ratio: ratio, fc: 0.5 * 0.95 * math.Min(1, 1/ratio), half: float64(resampleTaps) * math.Max(1, ratio)}
}

// push adds input and returns the outputs whose filter it completes.
func (s *streamResampler) push(in []int16) []int16 {
	if s.ratio == 1 {
		return append([]int16(nil), in...)
	}
	s.buf = append(s.buf, in...)
	s.total += len(in)
	return s.produce(false)
}

// flush returns the outputs left at the end of the input.
func (s *streamResampler) flush() []int16 {
	if s.ratio == 1 {
		return nil
	}
	return s.produce(true)
}

func (s *streamResampler) produce(final bool) []int16 {
	var out []int16
	n := int(float64(s.total) / s.ratio) // outputs of the whole input so far
	for ; s.next < n; s.next++ {
		t := float64(s.next) * s.ratio
		lo, hi := int(math.Ceil(t-s.half)), int(math.Floor(t+s.half))
		if !final && hi >= s.total {
			break // needs input not yet here
		}
		var acc, wsum float64
		for k := max(lo, 0); k <= hi && k < s.total; k++ {
			x := float64(k) - t
			w := 2 * s.fc * sinc(2*s.fc*x) * blackman(x/s.half)
			acc += w * float64(s.buf[k-s.base])
			wsum += w
		}
		if wsum != 0 {
			acc /= wsum
		}
		out = append(out, clamp16(acc))
	}
	// Drop the input no output to come reaches.
	if keep := int(math.Ceil(float64(s.next)*s.ratio-s.half)) - s.base; keep > 0 && keep <= len(s.buf) {
		s.buf = append(s.buf[:0], s.buf[keep:]...)
		s.base += keep
	}
	return out
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
	_ Recognizer           = (*OpenAI)(nil)
	_ StreamingSynthesizer = (*OpenAI)(nil)
	_ Translator           = (*LibreTranslate)(nil)
)
