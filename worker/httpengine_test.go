package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker"
	"github.com/pentecost/pentecost/worker/engine"
)

// fastRetry keeps the retry tests quick: the behaviour, not the waits.
var fastRetry = worker.Retry{Attempts: 3, Timeout: 300 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

// tone returns n samples of a 440 Hz tone.
func tone(n, rate int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
	}
	return s
}

// openAIServer implements the two endpoints of the OpenAI speech API the
// worker uses, checking the requests as the API documents them.
func openAIServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/audio/transcriptions", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sk-test" {
			http.Error(w, `{"error":{"message":"bad key"}}`, http.StatusUnauthorized)
			return
		}
		f, _, err := r.FormFile("file")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(f)
		pcm, rate, err := worker.DecodeWAV(b)
		if err != nil || rate != 16000 || len(pcm) != 8000 || r.FormValue("model") != "whisper-1" || r.FormValue("language") != "en" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"text":"Good morning."}`)
	})
	mux.HandleFunc("POST /v1/audio/speech", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Model, Input, Voice, ResponseFormat string }
		dec := json.NewDecoder(r.Body)
		var raw map[string]string
		if err := dec.Decode(&raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Model, req.Input, req.Voice, req.ResponseFormat = raw["model"], raw["input"], raw["voice"], raw["response_format"]
		if req.Model != "tts-1" || req.Input != "Buenos días" || req.Voice != "nova" || req.ResponseFormat != "wav" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "audio/wav")
		w.Write(worker.EncodeWAV(tone(24000, 24000), 24000)) // one second at 24 kHz
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestOpenAI(t *testing.T) {
	srv := openAIServer(t)
	o := worker.NewOpenAI(srv.URL+"/v1", "sk-test")
	o.Voices["es"] = "nova"
	o.Retry = fastRetry
	ctx := context.Background()
	t.Run("OKTranscription", func(t *testing.T) {
		text, err := o.Recognize(ctx, tone(8000, 16000), "en")
		if err != nil || text != "Good morning." {
			t.Fatalf("%q %v", text, err)
		}
	})
	t.Run("OKSpeech", func(t *testing.T) {
		pcm, err := o.Synthesize(ctx, "Buenos días", "es")
		if err != nil {
			t.Fatal(err)
		}
		if len(pcm) != 16000 {
			t.Fatalf("%d samples, want one second at 16 kHz", len(pcm))
		}
	})
	t.Run("ErrUnauthorized", func(t *testing.T) {
		bad := worker.NewOpenAI(srv.URL+"/v1", "wrong")
		bad.Retry = fastRetry
		_, err := bad.Recognize(ctx, tone(8000, 16000), "en")
		var he *worker.HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
			t.Fatalf("err = %v, want HTTP 401 without retries", err)
		}
	})
}

func TestLibreTranslate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]string
		if r.URL.Path != "/translate" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		if req["source"] != "en" || req["target"] != "es" || req["format"] != "text" || req["api_key"] != "k" {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"translatedText": "[es] " + req["q"]})
	}))
	defer srv.Close()
	l := worker.NewLibreTranslate(srv.URL, "k")
	l.Retry = fastRetry
	got, err := l.Translate(context.Background(), "Let us pray.", "en", "es")
	if err != nil || got != "[es] Let us pray." {
		t.Fatalf("%q %v", got, err)
	}
}

// TestRetry drives each HTTP engine's error paths: a rate limit, server
// errors and a timeout are retried with backoff; a client error is not;
// an engine that keeps failing gives up after the configured attempts.
func TestRetry(t *testing.T) {
	type step func(w http.ResponseWriter, r *http.Request)
	ok := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"translatedText":"hola"}`) }
	status := func(code int, header ...string) step {
		return func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			w.WriteHeader(code)
			io.WriteString(w, `{"error":"try later"}`)
		}
	}
	// hang answers after the client's attempt timed out; reading the body
	// lets the server notice the client going away.
	hang := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	for _, tc := range []struct {
		name     string
		steps    []step
		attempts int
		status   int // 0: success
	}{
		{"OKAfterRateLimit", []step{status(429, "Retry-After", "0"), ok}, 2, 0},
		{"OKAfterServerErrors", []step{status(500), status(503), ok}, 3, 0},
		{"OKAfterTimeout", []step{hang, ok}, 2, 0},
		{"ErrBadRequestNotRetried", []step{status(400), ok}, 1, 400},
		{"ErrServerErrorGivesUp", []step{status(502), status(502), status(502), ok}, 3, 502},
		{"ErrRateLimitGivesUp", []step{status(429), status(429), status(429), ok}, 3, 429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				tc.steps[min(i, len(tc.steps)-1)](w, r)
			}))
			defer srv.Close()
			l := worker.NewLibreTranslate(srv.URL, "")
			l.Retry = fastRetry
			got, err := l.Translate(context.Background(), "hello", "en", "es")
			if int(n.Load()) != tc.attempts {
				t.Errorf("%d attempts, want %d", n.Load(), tc.attempts)
			}
			if tc.status == 0 {
				if err != nil || got != "hola" {
					t.Fatalf("%q %v", got, err)
				}
				return
			}
			var he *worker.HTTPError
			if !errors.As(err, &he) || he.Status != tc.status {
				t.Fatalf("err = %v, want HTTP %d", err, tc.status)
			}
		})
	}
	t.Run("RetryAfterIsHonoured", func(t *testing.T) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				status(429, "Retry-After", "1")(w, r)
				return
			}
			ok(w, r)
		}))
		defer srv.Close()
		l := worker.NewLibreTranslate(srv.URL, "")
		l.Retry = worker.Retry{Attempts: 2, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Second}
		start := time.Now()
		if _, err := l.Translate(context.Background(), "hello", "en", "es"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < time.Second {
			t.Fatalf("retried after %v, before the server's Retry-After of 1s", d)
		}
	})
}

// awsEnv points the AWS SDK at static test credentials and nothing else
// on this machine.
func awsEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CA_BUNDLE", "")
}

// TestAWS runs Amazon Translate and Polly against a local server speaking
// their wire protocols (JSON 1.1 with X-Amz-Target; REST-JSON returning
// the audio stream), throttling the first call of each.
func TestAWS(t *testing.T) {
	awsEnv(t)
	var translateCalls, pollyCalls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDTEST/") {
			http.Error(w, "unsigned", http.StatusForbidden)
			return
		}
		switch {
		case r.URL.Path == "/" && strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".TranslateText"):
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			if translateCalls.Add(1) == 1 {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"__type":"ThrottlingException","message":"Rate exceeded"}`)
				return
			}
			var req struct{ Text, SourceLanguageCode, TargetLanguageCode string }
			json.NewDecoder(r.Body).Decode(&req)
			if req.SourceLanguageCode != "en" || req.TargetLanguageCode != "es" {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"__type":"UnsupportedLanguagePairException","message":"no"}`)
				return
			}
			json.NewEncoder(w).Encode(map[string]string{"TranslatedText": "[es] " + req.Text, "SourceLanguageCode": "en", "TargetLanguageCode": "es"})
		case r.URL.Path == "/v1/speech":
			if pollyCalls.Add(1) == 1 {
				w.Header().Set("X-Amzn-ErrorType", "ServiceFailureException")
				w.WriteHeader(http.StatusInternalServerError)
				io.WriteString(w, `{"message":"internal"}`)
				return
			}
			var req map[string]string
			json.NewDecoder(r.Body).Decode(&req)
			if req["OutputFormat"] != "pcm" || req["SampleRate"] != "16000" || req["VoiceId"] != "Lucia" {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"message":"bad"}`)
				return
			}
			w.Header().Set("Content-Type", "audio/pcm")
			b := make([]byte, 3200)
			worker.PutPCM(b, tone(1600, 16000))
			w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	cfg, err := worker.LoadAWSConfig(ctx, worker.AWSOptions{Region: "eu-west-1", Endpoint: srv.URL, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OKTranslateAfterThrottling", func(t *testing.T) {
		got, err := worker.NewAWSTranslate(cfg).Translate(ctx, "Let us pray.", "en", "es")
		if err != nil || got != "[es] Let us pray." || translateCalls.Load() != 2 {
			t.Fatalf("%q %v after %d calls", got, err, translateCalls.Load())
		}
	})
	t.Run("ErrTranslateUnsupportedPair", func(t *testing.T) {
		if _, err := worker.NewAWSTranslate(cfg).Translate(ctx, "x", "en", "xx"); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("OKPollyAfterServerError", func(t *testing.T) {
		pcm, err := worker.NewAWSPolly(cfg).Synthesize(ctx, "Hola", "es")
		if err != nil || len(pcm) != 1600 || pollyCalls.Load() != 2 {
			t.Fatalf("%d samples, %v after %d calls", len(pcm), err, pollyCalls.Load())
		}
	})
	t.Run("ErrNoRegion", func(t *testing.T) {
		t.Setenv("AWS_REGION", "")
		t.Setenv("AWS_DEFAULT_REGION", "")
		if _, err := worker.LoadAWSConfig(ctx, worker.AWSOptions{Endpoint: srv.URL}); err == nil {
			t.Fatal("no error")
		}
	})
}

// speechFake is a server of one role of the OpenAI speech API that
// records where requests arrived and with which key.
type speechFake struct {
	srv  *httptest.Server
	hits atomic.Int32
	path atomic.Value // string
	auth atomic.Value // string
}

func newSpeechFake(t *testing.T, handler http.HandlerFunc) *speechFake {
	f := &speechFake{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		f.path.Store(r.URL.Path)
		f.auth.Store(r.Header.Get("Authorization"))
		handler(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func transcriptionHandler(text string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, _, err := r.FormFile("file")
		if err != nil {
			http.Error(w, `{"error":"no file"}`, http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(f)
		if _, rate, err := worker.DecodeWAV(b); err != nil || rate != 16000 || r.FormValue("response_format") != "json" {
			http.Error(w, `{"error":"bad audio"}`, http.StatusBadRequest)
			return
		}
		io.WriteString(w, `{"text":"`+text+`"}`)
	}
}

func wavSpeechHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "audio/wav")
	w.Write(worker.EncodeWAV(tone(24000, 24000), 24000))
}

func TestOpenAIEndpoints(t *testing.T) {
	t.Run("PerRole", func(t *testing.T) {
		stt := newSpeechFake(t, transcriptionHandler("Good morning."))
		tts := newSpeechFake(t, wavSpeechHandler)
		cfg := onlyConfig(t, "recognize.en=openai\nsynthesize.es=openai:nova\nopenai.url=http://127.0.0.1:1/v1\nopenai.api_key=sk-all\n"+
			"openai.stt.url="+stt.srv.URL+"/v1\nopenai.stt.api_key=sk-stt\nopenai.tts.url="+tts.srv.URL+"/v1\nopenai.tts.api_key=sk-tts\n")
		e, err := cfg.Engines(context.Background(), envNone)
		if err != nil {
			t.Fatal(err)
		}
		text, err := e.Recognizers["en"].Recognize(context.Background(), tone(8000, 16000), "en")
		if err != nil || text != "Good morning." {
			t.Fatalf("%q %v", text, err)
		}
		pcm, err := e.Synthesizers["es"].Synthesize(context.Background(), "Buenos días", "es")
		if err != nil || len(pcm) != 16000 {
			t.Fatalf("%d samples, %v", len(pcm), err)
		}
		if stt.hits.Load() != 1 || stt.path.Load() != "/v1/audio/transcriptions" || stt.auth.Load() != "Bearer sk-stt" {
			t.Errorf("stt: %d hits, %v, %v", stt.hits.Load(), stt.path.Load(), stt.auth.Load())
		}
		if tts.hits.Load() != 1 || tts.path.Load() != "/v1/audio/speech" || tts.auth.Load() != "Bearer sk-tts" {
			t.Errorf("tts: %d hits, %v, %v", tts.hits.Load(), tts.path.Load(), tts.auth.Load())
		}
	})
	t.Run("OneURLForAll", func(t *testing.T) {
		both := newSpeechFake(t, func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/speech") {
				wavSpeechHandler(w, r)
				return
			}
			transcriptionHandler("Hello.")(w, r)
		})
		cfg := onlyConfig(t, "recognize.en=openai\nsynthesize.es=openai\nopenai.url="+both.srv.URL+"/v1\n")
		e, err := cfg.Engines(context.Background(), func(k string) string {
			if k == "OPENAI_API_KEY" {
				return "sk-env"
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Recognizers["en"].Recognize(context.Background(), tone(8000, 16000), "en"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Synthesizers["es"].Synthesize(context.Background(), "hola", "es"); err != nil {
			t.Fatal(err)
		}
		if both.hits.Load() != 2 || both.auth.Load() != "Bearer sk-env" {
			t.Fatalf("%d hits, auth %v", both.hits.Load(), both.auth.Load())
		}
	})
	t.Run("WhisperCppPath", func(t *testing.T) {
		// whisper.cpp's server answers POST /inference with {"text": …}.
		w := newSpeechFake(t, transcriptionHandler(" And so it began."))
		cfg := onlyConfig(t, "recognize.en=openai\nopenai.stt.url="+w.srv.URL+"\nopenai.stt.path=/inference\n")
		e, err := cfg.Engines(context.Background(), envNone)
		if err != nil {
			t.Fatal(err)
		}
		text, err := e.Recognizers["en"].Recognize(context.Background(), tone(8000, 16000), "en")
		if err != nil || text != "And so it began." || w.path.Load() != "/inference" {
			t.Fatalf("%q %v at %v", text, err, w.path.Load())
		}
	})
	t.Run("ErrNoURLForRole", func(t *testing.T) {
		cfg := onlyConfig(t, "recognize.en=openai\nopenai.tts.url=http://127.0.0.1:1/v1\n")
		if _, err := cfg.Engines(context.Background(), envNone); err == nil || !strings.Contains(err.Error(), "openai.stt.url") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestOpenAISpeechStream checks that SynthesizeStream emits audio while
// the server is still sending it: the fake sends the first half, then
// waits for the test to have received audio before sending the rest.
func TestOpenAISpeechStream(t *testing.T) {
	whole := tone(24000, 24000) // one second at 24 kHz
	body := make([]byte, 2*len(whole))
	worker.PutPCM(body, whole)
	gotFirst := make(chan struct{})
	var req map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req["response_format"] != "pcm" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "audio/pcm")
		half := len(body) / 2
		half++ // an odd cut: one sample split across writes
		w.Write(body[:half])
		w.(http.Flusher).Flush()
		select {
		case <-gotFirst:
		case <-r.Context().Done():
			return
		}
		w.Write(body[half:])
	}))
	defer srv.Close()
	o := worker.NewOpenAI(srv.URL+"/v1", "")
	o.Retry = fastRetry
	o.Retry.Timeout = 5 * time.Second
	var got []int16
	emits := 0
	err := o.SynthesizeStream(context.Background(), "Buenos días", "es", worker.Prosody{Rate: 1.2}, func(pcm []int16) error {
		if emits == 0 {
			close(gotFirst)
		}
		emits++
		got = append(got, pcm...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if emits < 2 {
		t.Fatalf("%d emits: audio was not emitted before the body ended", emits)
	}
	if req["speed"] != 1.2 {
		t.Errorf("speed %v, want 1.2", req["speed"])
	}
	want := worker.Resample(whole, 24000, 16000)
	if len(got) != len(want) {
		t.Fatalf("%d samples, want %d", len(got), len(want))
	}
	for i := range want {
		if d := int(got[i]) - int(want[i]); d > 1 || d < -1 {
			t.Fatalf("sample %d: %d, resampling the whole gives %d", i, got[i], want[i])
		}
	}
	t.Run("ErrFromEmitStops", func(t *testing.T) {
		stop := errors.New("listener gone")
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write(body)
		}))
		defer srv.Close()
		o := worker.NewOpenAI(srv.URL+"/v1", "")
		err := o.SynthesizeStream(context.Background(), "x", "es", worker.Prosody{}, func([]int16) error { return stop })
		if !errors.Is(err, stop) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestSpeed(t *testing.T) {
	for _, tc := range []struct{ rate, want float64 }{{0, 0}, {1, 1}, {1.234, 1.23}, {0.1, 0.25}, {9, 4}, {-1, 0}} {
		if got := worker.Speed(worker.Prosody{Rate: tc.rate}); got != tc.want {
			t.Errorf("Speed(%v) = %v, want %v", tc.rate, got, tc.want)
		}
	}
}

func TestRetryAfterForms(t *testing.T) {
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"Seconds", "30", 30 * time.Second},
		{"HTTPDate", now.Add(2 * time.Minute).Format(http.TimeFormat), 2 * time.Minute},
		{"HTTPDatePast", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"RFC850Date", now.Add(time.Minute).Format("Monday, 02-Jan-06 15:04:05 GMT"), time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				w.Header().Set("Retry-After", tc.header)
				w.WriteHeader(http.StatusTooManyRequests)
			}))
			defer srv.Close()
			l := worker.NewLibreTranslate(srv.URL, "")
			l.Retry = fastRetry
			l.Retry.Now = func() time.Time { return now }
			_, err := l.Translate(context.Background(), "hello", "en", "es")
			var ee *engine.Error
			if !errors.As(err, &ee) || ee.Code != engine.ErrThrottled || ee.RetryAfter != tc.want {
				t.Fatalf("err = %#v, want throttled, retry after %v", err, tc.want)
			}
			var he *worker.HTTPError
			if !errors.As(err, &he) || he.Status != 429 || n.Load() != 3 {
				t.Fatalf("err = %v after %d attempts", err, n.Load())
			}
		})
	}
	t.Run("DateHonouredBetweenAttempts", func(t *testing.T) {
		// The date form is read and waited for (capped at MaxBackoff): two
		// attempts, the wait between them as the server asked.
		var n atomic.Int32
		var first time.Time
		var gap atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				first = time.Now()
				w.Header().Set("Retry-After", time.Now().Add(3*time.Second).UTC().Format(http.TimeFormat))
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			gap.Store(int64(time.Since(first)))
			io.WriteString(w, `{"translatedText":"hola"}`)
		}))
		defer srv.Close()
		l := worker.NewLibreTranslate(srv.URL, "")
		l.Retry = worker.Retry{Attempts: 2, MinBackoff: time.Millisecond, MaxBackoff: 1500 * time.Millisecond}
		if _, err := l.Translate(context.Background(), "hello", "en", "es"); err != nil {
			t.Fatal(err)
		}
		// HTTP dates have whole seconds: the date is 2–3 s ahead, capped to 1.5 s.
		if d := time.Duration(gap.Load()); d < 1400*time.Millisecond {
			t.Fatalf("retried after %v, before the server's Retry-After date (capped at 1.5s)", d)
		}
	})
}

func TestOpenAISpeechStreamFormats(t *testing.T) {
	whole := tone(22050, 22050) // one second of a Piper voice's rate
	for _, tc := range []struct{ name, conf, format string }{
		{"PCMAtConfiguredRate", "openai.tts.pcm_rate=22050\n", "pcm"},
		{"WAV", "openai.tts.format=wav\n", "wav"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var req map[string]any
				if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req["response_format"] != tc.format {
					http.Error(w, "bad request", http.StatusBadRequest)
					return
				}
				if tc.format == "wav" {
					w.Write(worker.EncodeWAV(whole, 22050))
					return
				}
				b := make([]byte, 2*len(whole))
				worker.PutPCM(b, whole)
				w.Write(b)
			}))
			defer srv.Close()
			e, err := onlyConfig(t, "synthesize.es=openai\nopenai.tts.url="+srv.URL+"/v1\n"+tc.conf).Engines(context.Background(), envNone)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			err = e.Synthesizers["es"].(worker.StreamingSynthesizer).SynthesizeStream(context.Background(), "hola", "es", worker.Prosody{},
				func(pcm []int16) error { n += len(pcm); return nil })
			if err != nil || n != 16000 {
				t.Fatalf("%d samples (want one second at 16 kHz), %v", n, err)
			}
		})
	}
	if _, err := onlyConfig(t, "synthesize.es=openai\nopenai.url=http://x/v1\nopenai.tts.format=mp3\n").Engines(context.Background(), envNone); err == nil {
		t.Error("openai.tts.format=mp3 accepted")
	}
}
