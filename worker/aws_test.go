package worker_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/pentecost/pentecost/worker"
	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/enginetest"
)

// pollyRequest is the JSON body of Polly's SynthesizeSpeech, POST /v1/speech
// (API reference, SynthesizeSpeech): the answer is the audio itself,
// Content-Type audio/pcm for OutputFormat pcm, with the
// x-amzn-RequestCharacters header; errors are JSON with x-amzn-ErrorType.
type pollyRequest struct {
	Engine       string
	OutputFormat string
	SampleRate   string
	Text         string
	TextType     string
	VoiceId      string
}

// fakePolly answers SynthesizeSpeech with samples 0, 1, 2, … of n in two
// parts: the first 100 ms at once, the rest only once release is closed.
type fakePolly struct {
	*httptest.Server
	n       int
	release chan struct{}

	mu       sync.Mutex
	requests []pollyRequest
	status   int
	errType  string
}

func newFakePolly(t *testing.T, n int) *fakePolly {
	f := &fakePolly{n: n, release: make(chan struct{})}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req pollyRequest
		// Read the whole request before answering: a reply that starts
		// while the client still sends makes Go's client close the
		// connection under load.
		body, err := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != "/v1/speech" || err != nil || json.Unmarshal(body, &req) != nil {
			w.Header().Set("X-Amzn-Errortype", "ValidationException")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"message":"bad request"}`)
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, req)
		status, errType := f.status, f.errType
		f.mu.Unlock()
		if status != 0 {
			w.Header().Set("X-Amzn-Errortype", errType)
			w.WriteHeader(status)
			io.WriteString(w, `{"message":"no"}`)
			return
		}
		b := make([]byte, 2*f.n)
		for i := range f.n {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(i))
		}
		w.Header().Set("Content-Type", "audio/pcm")
		w.Header().Set("X-Amzn-Requestcharacters", "5")
		first := min(len(b), 3200)
		w.Write(b[:first])
		http.NewResponseController(w).Flush()
		select {
		case <-f.release:
		case <-r.Context().Done():
			return
		}
		w.Write(b[first:])
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakePolly) polly() *worker.AWSPolly {
	p := worker.NewAWSPolly(aws.Config{Region: "eu-west-1", BaseEndpoint: aws.String(f.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDFAKE", "SECRETFAKE", ""), RetryMaxAttempts: 1,
		HTTPClient: f.Client()})
	return p
}

func (f *fakePolly) last() pollyRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[len(f.requests)-1]
}

func TestPollyStream(t *testing.T) {
	t.Run("FirstChunkBeforeBodyEnds", func(t *testing.T) {
		f := newFakePolly(t, 8000)
		var got []int16
		err := f.polly().SynthesizeStream(t.Context(), "Hola a todos", "es", worker.Prosody{}, func(pcm []int16) error {
			if len(got) == 0 {
				// The body is held until this first emit lets it go on.
				close(f.release)
			}
			got = append(got, pcm...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 8000 {
			t.Fatalf("%d samples, want 8000", len(got))
		}
		for i, v := range got {
			if v != int16(i) {
				t.Fatalf("sample %d = %d: out of order", i, v)
			}
		}
		want := pollyRequest{Engine: "neural", OutputFormat: "pcm", SampleRate: "16000", Text: "Hola a todos", TextType: "text", VoiceId: "Lucia"}
		if r := f.last(); r != want {
			t.Fatalf("request %+v, want %+v", r, want)
		}
	})

	t.Run("ProsodySSML", func(t *testing.T) {
		f := newFakePolly(t, 100)
		close(f.release)
		err := f.polly().SynthesizeStream(t.Context(), `Tom & "Jerry" <3`, "es", worker.Prosody{Rate: 1.2, Loudness: 3.4},
			func([]int16) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		r := f.last()
		want := `<speak><prosody rate="120%" volume="+3dB">Tom &amp; &#34;Jerry&#34; &lt;3</prosody></speak>`
		if r.TextType != "ssml" || r.Text != want {
			t.Fatalf("TextType %q Text %q, want ssml %q", r.TextType, r.Text, want)
		}
	})

	t.Run("EmitErrorStops", func(t *testing.T) {
		f := newFakePolly(t, 8000)
		stop := errors.New("stop")
		calls := 0
		err := f.polly().SynthesizeStream(t.Context(), "hola", "es", worker.Prosody{}, func([]int16) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("err %v after %d calls, want stop after 1", err, calls)
		}
	})

	t.Run("ContextCanceled", func(t *testing.T) {
		f := newFakePolly(t, 8000)
		ctx, cancel := context.WithCancel(t.Context())
		err := f.polly().SynthesizeStream(ctx, "hola", "es", worker.Prosody{}, func([]int16) error {
			cancel()
			return nil
		})
		if err == nil {
			t.Fatal("no error after cancel")
		}
	})

	t.Run("ErrThrottled", func(t *testing.T) {
		f := newFakePolly(t, 100)
		f.status, f.errType = http.StatusBadRequest, "ThrottlingException"
		err := f.polly().SynthesizeStream(t.Context(), "hola", "es", worker.Prosody{}, func([]int16) error { return nil })
		var e *engine.Error
		if !errors.As(err, &e) || e.Code != engine.ErrThrottled {
			t.Fatalf("err %v, want throttled", err)
		}
	})

	t.Run("ErrUnsupported", func(t *testing.T) {
		f := newFakePolly(t, 100)
		err := f.polly().SynthesizeStream(t.Context(), "hola", "xx", worker.Prosody{}, func([]int16) error { return nil })
		var e *engine.Error
		if !errors.As(err, &e) || e.Code != engine.ErrUnsupported {
			t.Fatalf("err %v, want unsupported", err)
		}
	})
}

func TestPollySSML(t *testing.T) {
	for _, tc := range []struct {
		p    worker.Prosody
		want string
	}{
		{worker.Prosody{}, ""},
		{worker.Prosody{Rate: 1}, ""},
		{worker.Prosody{Rate: 5}, `<speak><prosody rate="200%">a</prosody></speak>`},
		{worker.Prosody{Rate: 0.1}, `<speak><prosody rate="20%">a</prosody></speak>`},
		{worker.Prosody{Loudness: -20}, `<speak><prosody volume="-6dB">a</prosody></speak>`},
	} {
		got, ok := worker.PollySSML("a", tc.p)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("PollySSML(%+v) = %q, %v; want %q", tc.p, got, ok, tc.want)
		}
	}
}

func TestPollyStreamingSynthesizerSuite(t *testing.T) {
	f := newFakePolly(t, 16000)
	close(f.release)
	enginetest.RunStreamingSynthesizer(t, f.polly(), "es")
}
