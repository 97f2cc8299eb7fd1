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
