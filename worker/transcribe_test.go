package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/pentecost/pentecost/worker"
)

// transcribeServer speaks the parts of S3 (REST: PutObject, DeleteObject)
// and Amazon Transcribe (JSON 1.1: StartTranscriptionJob,
// GetTranscriptionJob, DeleteTranscriptionJob) that AWSTranscribe uses,
// plus the transcript file a completed job points to. Its "transcript"
// names the number of samples it was sent, so a test can tell the audio
// went through.
type transcribeServer struct {
	*httptest.Server
	// outcome of every job: "COMPLETED" after two polls, "FAILED", or
	// "" (it never ends).
	outcome string
	// throttle answers the first throttle[target] calls of a Transcribe
	// operation with ThrottlingException.
	throttle map[string]int

	mu      sync.Mutex
	objects map[string][]byte         // "bucket/key" → body
	jobs    map[string]map[string]any // job name → its StartTranscriptionJob request
	polls   map[string]int            // job name → GetTranscriptionJob calls
	calls   map[string]int            // operation → calls
	deleted map[string]bool           // jobs deleted
}

func newTranscribeServer(t *testing.T, outcome string) *transcribeServer {
	s := &transcribeServer{outcome: outcome, throttle: map[string]int{}, objects: map[string][]byte{},
		jobs: map[string]map[string]any{}, polls: map[string]int{}, calls: map[string]int{}, deleted: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *transcribeServer) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/transcripts/") {
		s.transcript(w, r)
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDTEST/") {
		http.Error(w, "unsigned", http.StatusForbidden)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	target := r.Header.Get("X-Amz-Target")
	if r.Method == http.MethodPost && r.URL.Path == "/" && strings.HasPrefix(target, "Transcribe.") {
		s.transcribe(w, r, strings.TrimPrefix(target, "Transcribe."))
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/")
	switch r.Method {
	case http.MethodPut:
		s.calls["PutObject"]++
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Encoding") == "aws-chunked" || int64(len(body)) != r.ContentLength {
			http.Error(w, "unexpected body encoding", http.StatusBadRequest)
			return
		}
		s.objects[key] = body
		w.Header().Set("ETag", `"1"`)
	case http.MethodDelete:
		s.calls["DeleteObject"]++
		delete(s.objects, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func awsError(w http.ResponseWriter, status int, typ string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"__type":%q,"Message":"test"}`, typ)
}

func (s *transcribeServer) transcribe(w http.ResponseWriter, r *http.Request, op string) {
	s.calls[op]++
	if s.throttle[op] > 0 {
		s.throttle[op]--
		awsError(w, http.StatusBadRequest, "ThrottlingException")
		return
	}
	var req map[string]any
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		awsError(w, http.StatusBadRequest, "BadRequestException")
		return
	}
	name, _ := req["TranscriptionJobName"].(string)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	switch op {
	case "StartTranscriptionJob":
		media, _ := req["Media"].(map[string]any)
		uri, _ := media["MediaFileUri"].(string)
		if _, ok := s.objects[strings.TrimPrefix(uri, "s3://")]; !ok || s.jobs[name] != nil {
			awsError(w, http.StatusBadRequest, "BadRequestException")
			return
		}
		s.jobs[name] = req
		json.NewEncoder(w).Encode(map[string]any{"TranscriptionJob": map[string]any{"TranscriptionJobName": name, "TranscriptionJobStatus": "IN_PROGRESS"}})
	case "GetTranscriptionJob":
		if s.jobs[name] == nil {
			awsError(w, http.StatusBadRequest, "NotFoundException")
			return
		}
		s.polls[name]++
		job := map[string]any{"TranscriptionJobName": name, "TranscriptionJobStatus": "IN_PROGRESS"}
		switch {
		case s.outcome == "COMPLETED" && s.polls[name] >= 2:
			job["TranscriptionJobStatus"] = "COMPLETED"
			job["Transcript"] = map[string]any{"TranscriptFileUri": s.URL + "/transcripts/" + name + ".json"}
		case s.outcome == "FAILED":
			job["TranscriptionJobStatus"] = "FAILED"
			job["FailureReason"] = "The media format is not supported."
		}
		json.NewEncoder(w).Encode(map[string]any{"TranscriptionJob": job})
	case "DeleteTranscriptionJob":
		s.deleted[name] = true
		w.Write([]byte(`{}`))
	default:
		awsError(w, http.StatusBadRequest, "UnknownOperationException")
	}
}

// transcript serves a completed job's file: "heard N samples".
func (s *transcribeServer) transcript(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/transcripts/"), ".json")
	req := s.jobs[name]
	if req == nil || s.deleted[name] {
		http.NotFound(w, r)
		return
	}
	uri := req["Media"].(map[string]any)["MediaFileUri"].(string)
	pcm, _, err := worker.DecodeWAV(s.objects[strings.TrimPrefix(uri, "s3://")])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"jobName": name, "results": map[string]any{
		"transcripts": []map[string]string{{"transcript": fmt.Sprintf("heard %d samples", len(pcm))}}}})
}

func (s *transcribeServer) count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// leftovers reports objects and undeleted jobs the engine left behind.
func (s *transcribeServer) leftovers() (objects, jobs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.jobs {
		if !s.deleted[name] {
			jobs++
		}
	}
	return len(s.objects), jobs
}

func newTranscribe(t *testing.T, s *transcribeServer) *worker.AWSTranscribe {
	t.Helper()
	cfg, err := worker.LoadAWSConfig(context.Background(), worker.AWSOptions{Region: "eu-west-1", Endpoint: s.URL, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(cfg.BaseEndpoint) != s.URL {
		t.Fatalf("BaseEndpoint = %v", cfg.BaseEndpoint)
	}
	a := worker.NewAWSTranscribe(cfg, "talks")
	a.PollInterval, a.Retry = 5*time.Millisecond, fastRetry
	return a
}

// TestAWSTranscribe runs the batch Transcribe recogniser against the local
// S3 and Transcribe server.
func TestAWSTranscribe(t *testing.T) {
	awsEnv(t)
	ctx := context.Background()
	pcm := tone(8000, 16000)

	t.Run("OKAfterThrottling", func(t *testing.T) {
		s := newTranscribeServer(t, "COMPLETED")
		s.throttle["StartTranscriptionJob"], s.throttle["GetTranscriptionJob"] = 1, 1
		got, err := newTranscribe(t, s).Recognize(ctx, pcm, "en")
		if err != nil || got != "heard 8000 samples" {
			t.Fatalf("Recognize = %q, %v", got, err)
		}
		if n := s.count("StartTranscriptionJob"); n != 2 {
			t.Fatalf("StartTranscriptionJob called %d times, want 2 (one throttled)", n)
		}
		s.mu.Lock()
		var req map[string]any
		for _, r := range s.jobs {
			req = r
		}
		s.mu.Unlock()
		uri := req["Media"].(map[string]any)["MediaFileUri"].(string)
		if req["LanguageCode"] != "en-US" || req["MediaFormat"] != "wav" || req["MediaSampleRateHertz"] != 16000.0 ||
			!strings.HasPrefix(uri, "s3://talks/pentecost/pentecost-") {
			t.Fatalf("job request = %v", req)
		}
		if objects, jobs := s.leftovers(); objects != 0 || jobs != 0 {
			t.Fatalf("left %d objects and %d jobs behind", objects, jobs)
		}
	})

	t.Run("ErrJobFailed", func(t *testing.T) {
		s := newTranscribeServer(t, "FAILED")
		_, err := newTranscribe(t, s).Recognize(ctx, pcm, "en")
		if !errors.Is(err, worker.ErrTranscribeFailed) {
			t.Fatalf("Recognize = %v, want ErrTranscribeFailed", err)
		}
		if objects, jobs := s.leftovers(); objects != 0 || jobs != 0 {
			t.Fatalf("left %d objects and %d jobs behind", objects, jobs)
		}
	})

	t.Run("ErrTimeout", func(t *testing.T) {
		s := newTranscribeServer(t, "")
		a := newTranscribe(t, s)
		a.Timeout = 200 * time.Millisecond
		_, err := a.Recognize(ctx, pcm, "en")
		if !errors.Is(err, worker.ErrTranscribeTimeout) {
			t.Fatalf("Recognize = %v, want ErrTranscribeTimeout", err)
		}
		if n := s.count("GetTranscriptionJob"); n < 2 {
			t.Fatalf("polled %d times before giving up", n)
		}
		if objects, _ := s.leftovers(); objects != 0 {
			t.Fatalf("left %d objects behind", objects)
		}
	})

	t.Run("ErrThrottledThroughout", func(t *testing.T) {
		s := newTranscribeServer(t, "COMPLETED")
		s.throttle["StartTranscriptionJob"] = 100
		_, err := newTranscribe(t, s).Recognize(ctx, pcm, "en")
		if err == nil || errors.Is(err, worker.ErrTranscribeTimeout) {
			t.Fatalf("Recognize = %v, want the throttling error", err)
		}
		if n := s.count("StartTranscriptionJob"); n != fastRetry.Attempts {
			t.Fatalf("StartTranscriptionJob called %d times, want %d attempts", n, fastRetry.Attempts)
		}
		if objects, jobs := s.leftovers(); objects != 0 || jobs != 0 {
			t.Fatalf("left %d objects and %d jobs behind", objects, jobs)
		}
	})

	t.Run("ErrNoLanguageCode", func(t *testing.T) {
		s := newTranscribeServer(t, "COMPLETED")
		if _, err := newTranscribe(t, s).Recognize(ctx, pcm, "xx"); err == nil {
			t.Fatal("Recognize in a language without a code succeeded")
		}
		if n := s.count("PutObject"); n != 0 {
			t.Fatalf("uploaded %d objects for an unsupported language", n)
		}
	})
}

// overlapRecognizer answers "utterance N" for its Nth call, and holds the
// first call until the second has started: it can only finish if the
// worker recognises two utterances at once.
type overlapRecognizer struct {
	calls  atomic.Int32
	second chan struct{}
}

func (r *overlapRecognizer) Name() string     { return "overlap" }
func (r *overlapRecognizer) Concurrency() int { return 2 }

func (r *overlapRecognizer) Recognize(ctx context.Context, pcm []int16, lang string) (string, error) {
	n := r.calls.Add(1)
	switch n {
	case 1:
		select {
		case <-r.second:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	case 2:
		close(r.second)
	}
	return fmt.Sprintf("utterance %d", n), nil
}

// TestConcurrentRecognizer: a slow batch recogniser gets a session's
// utterances concurrently, and its transcripts still reach listeners in
// the order spoken.
func TestConcurrentRecognizer(t *testing.T) {
	engines, _ := fastEngines(t)
	engines.Recognizers["en"] = &overlapRecognizer{second: make(chan struct{})}
	e := newEnv(t)
	id := e.createSession()
	spk := e.speaker(id)
	es := e.listen(id, "es")
	e.startWorker(engines)
	poll(t, 5*time.Second, "Spanish to become available", es.isAvailable)
	stream(t, spk, bursts(2))
	poll(t, 10*time.Second, "two Spanish captions", func() bool { return len(es.finals()) == 2 })
	if got := es.finals(); got[0] != "[es] utterance 1" || got[1] != "[es] utterance 2" {
		t.Fatalf("captions %q, want utterances 1 and 2 in order", got)
	}
}
