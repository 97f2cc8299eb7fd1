package worker_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker"
	"github.com/prometheus/client_golang/prometheus"
)

// fastEngines are HTTP engines served on loopback: a recogniser that hears
// "Let us pray." in every utterance, a translator that fails for Catalan
// (and counts its calls), and a synthesiser answering half a second of tone.
// They keep the failure tests quick and independent of the offline engines.
func fastEngines(t *testing.T) (*worker.Engines, *atomic.Int32) {
	t.Helper()
	var catalan atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/audio/transcriptions", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"text":"Let us pray."}`)
	})
	mux.HandleFunc("POST /v1/audio/speech", func(w http.ResponseWriter, r *http.Request) {
		w.Write(worker.EncodeWAV(tone(8000, 16000), 16000))
	})
	mux.HandleFunc("POST /translate", func(w http.ResponseWriter, r *http.Request) {
		var req map[string]string
		json.NewDecoder(r.Body).Decode(&req)
		if req["target"] == "ca" {
			catalan.Add(1)
			http.Error(w, `{"error":"model not loaded"}`, http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"translatedText": "[" + req["target"] + "] " + req["q"]})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	o := worker.NewOpenAI(srv.URL+"/v1", "")
	o.Retry = fastRetry
	o.StreamFormat = "wav" // the fake server answers WAV
	l := worker.NewLibreTranslate(srv.URL, "")
	l.Retry = fastRetry
	e := &worker.Engines{
		Recognizers:  map[string]worker.Recognizer{"en": o},
		Translators:  map[worker.Pair]worker.Translator{{From: "en", To: "es"}: l, {From: "en", To: "ca"}: l},
		Synthesizers: map[string]worker.Synthesizer{"es": o, "ca": o},
	}
	return e, &catalan
}

// bursts returns n bursts of 600 ms of tone, 700 ms apart: n utterances.
func bursts(n int) []int16 {
	var pcm []int16
	for range n {
		pcm = append(pcm, tone(9600, 16000)...)
		pcm = append(pcm, make([]int16, 11200)...)
	}
	return pcm
}

// TestEngineFailsForOneLanguage: the Catalan translator fails on every
// utterance; each is skipped for Catalan only (counted, after its retries)
// and Spanish carries on.
func TestEngineFailsForOneLanguage(t *testing.T) {
	engines, catalanCalls := fastEngines(t)
	e := newEnv(t)
	id := e.createSession()
	spk := e.speaker(id)
	es, ca := e.listen(id, "es"), e.listen(id, "ca")
	_, reg := e.startWorker(engines)
	poll(t, 5*time.Second, "both languages to become available", func() bool { return es.isAvailable() && ca.isAvailable() })

	stream(t, spk, bursts(3))
	poll(t, 10*time.Second, "three Spanish utterances and three Catalan failures", func() bool {
		return metric(t, reg, "pentecost_worker_segments_spoken_total", map[string]string{"language": "es"}) == 3 &&
			metric(t, reg, "pentecost_worker_engine_errors_total", map[string]string{"stage": "translate", "language": "ca"}) == 3 &&
			es.samples() >= 3*8000
	})
	if got := es.finals(); len(got) != 3 || got[0] != "[es] Let us pray." {
		t.Errorf("Spanish captions %q", got)
	}
	if n := ca.samples(); n != 0 {
		t.Errorf("Catalan listeners got %d samples from a failing engine", n)
	}
	if n := catalanCalls.Load(); n != 3*int32(fastRetry.Attempts) {
		t.Errorf("Catalan translator called %d times, want %d (3 utterances × %d attempts)", n, 3*fastRetry.Attempts, fastRetry.Attempts)
	}
	if n := metric(t, reg, "pentecost_worker_stage_seconds", map[string]string{"stage": "synthesize", "language": "ca"}); n != 0 {
		t.Errorf("Catalan synthesised %v times after failed translations", n)
	}
}

// TestWorkersTakeOver: a second worker stands by while the first produces
// Spanish (no duplicated audio); when the first is killed the second picks
// the session up, and when that one is killed too, a restarted worker does.
func TestWorkersTakeOver(t *testing.T) {
	e := newEnv(t)
	id := e.createSession()
	spk := e.speaker(id)
	es := e.listen(id, "es")

	enginesA, _ := fastEngines(t)
	a, regA := e.startWorker(enginesA)
	poll(t, 5*time.Second, "worker A to claim Spanish", func() bool {
		return es.isAvailable() && metric(t, regA, "pentecost_worker_languages", nil) == 1
	})
	enginesB, _ := fastEngines(t)
	b, regB := e.startWorker(enginesB)

	published := func() int {
		return int((metric(t, regA, "pentecost_worker_audio_seconds_total", nil) + metric(t, regB, "pentecost_worker_audio_seconds_total", nil)) * worker.SampleRate)
	}

	stream(t, spk, bursts(2))
	poll(t, 10*time.Second, "worker A's two utterances to reach the listener", func() bool {
		return metric(t, regA, "pentecost_worker_segments_spoken_total", map[string]string{"language": "es"}) == 2 && es.samples() >= 2*8000
	})
	if n := metric(t, regB, "pentecost_worker_segments_total", nil); n != 0 {
		t.Fatalf("standby worker B processed %v utterances while A produced Spanish", n)
	}
	if got, want := es.samples(), published(); got != want {
		t.Fatalf("listener got %d samples, the workers published %d", got, want)
	}

	// A dies mid-session: the server releases its claim, B takes over.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	poll(t, 5*time.Second, "worker B to take Spanish over", func() bool {
		return es.isAvailable() && metric(t, regB, "pentecost_worker_languages", nil) == 1
	})
	stream(t, spk, bursts(2))
	poll(t, 10*time.Second, "worker B's two utterances to reach the listener", func() bool {
		return metric(t, regB, "pentecost_worker_segments_spoken_total", map[string]string{"language": "es"}) == 2 && es.samples() >= 4*8000
	})
	if got, want := es.samples(), published(); got != want {
		t.Fatalf("listener got %d samples, the workers published %d", got, want)
	}

	// B dies too; a worker started afresh picks the session up.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	poll(t, 5*time.Second, "Spanish to become unavailable", func() bool { return !es.isAvailable() })
	enginesC, _ := fastEngines(t)
	_, regC := e.startWorker(enginesC)
	poll(t, 5*time.Second, "the restarted worker to claim Spanish", es.isAvailable)
	before := es.samples()
	stream(t, spk, bursts(1))
	poll(t, 10*time.Second, "the restarted worker's utterance", func() bool {
		return metric(t, regC, "pentecost_worker_segments_spoken_total", map[string]string{"language": "es"}) == 1 && es.samples() >= before+8000
	})
}

// TestWorkersRaceForLanguage: two workers see a new Spanish listener in the
// same session list and both try to claim Spanish. The exclusive claim lets
// exactly one win; the other stands by (no duplicated audio) and takes the
// language over when the winner goes.
func TestWorkersRaceForLanguage(t *testing.T) {
	e := newEnv(t)
	id := e.createSession()
	spk := e.speaker(id)
	enginesA, _ := fastEngines(t)
	enginesB, _ := fastEngines(t)
	a, regA := e.startWorker(enginesA)
	b, regB := e.startWorker(enginesB)
	langs := func(reg *prometheus.Registry) float64 { return metric(t, reg, "pentecost_worker_languages", nil) }

	// Both workers are connected before the listener arrives: the list that
	// asks for Spanish reaches them together.
	es := e.listen(id, "es")
	poll(t, 5*time.Second, "one worker to claim Spanish", func() bool {
		return es.isAvailable() && langs(regA)+langs(regB) == 1
	})
	winner, winReg, loseReg := a, regA, regB
	if langs(regB) == 1 {
		winner, winReg, loseReg = b, regB, regA
	}
	published := func() int {
		return int((metric(t, regA, "pentecost_worker_audio_seconds_total", nil) + metric(t, regB, "pentecost_worker_audio_seconds_total", nil)) * worker.SampleRate)
	}

	stream(t, spk, bursts(2))
	poll(t, 10*time.Second, "the winner's two utterances to reach the listener", func() bool {
		return metric(t, winReg, "pentecost_worker_segments_spoken_total", map[string]string{"language": "es"}) == 2 && es.samples() >= 2*8000
	})
	if n := langs(loseReg); n != 0 {
		t.Fatalf("the losing worker produces %v languages", n)
	}
	if n := metric(t, loseReg, "pentecost_worker_audio_seconds_total", nil); n != 0 {
		t.Fatalf("the losing worker published %v s of audio", n)
	}
	if got, want := es.samples(), published(); got != want || got != 2*8000 {
		t.Fatalf("listener got %d samples, the workers published %d, want %d once", got, want, 2*8000)
	}

	// The winner goes: the other stops standing by and takes Spanish.
	if err := winner.Close(); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the standby worker to take Spanish over", func() bool {
		return es.isAvailable() && langs(loseReg) == 1
	})
}
