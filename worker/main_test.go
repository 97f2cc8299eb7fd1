package worker_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/servertest"
	"github.com/pentecost/pentecost/worker"
	"github.com/prometheus/client_golang/prometheus"
)

// workerSecret is the worker credential the test server accepts.
const workerSecret = "test-worker-secret"

// env is a whole Pentecost server on loopback (see servertest).
type env struct {
	*servertest.Server
	t testing.TB
}

// newEnv starts a server that updates workers' session lists every 200 ms
// (a production server: every second).
func newEnv(t testing.TB) *env {
	t.Helper()
	srv := servertest.Start(t,
		servertest.WorkerSecret(workerSecret),
		servertest.Configure(func(s *realtime.Server) { s.WorkerUpdateInterval = 200 * time.Millisecond }))
	return &env{Server: srv, t: t}
}

// createSession creates a session with English as its source.
func (e *env) createSession() string { return e.CreateSession("speaker", "en").ID }

// speaker connects a speaker to a session.
func (e *env) speaker(id string) *client.Speaker {
	e.t.Helper()
	s := client.NewSpeaker(e.URL, e.Token("speaker"))
	s.SessionID = id
	if err := s.Open(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = s.Close() })
	return s
}

// stream sends pcm as a speaker would: 20 ms chunks in real time.
func stream(t testing.TB, s *client.Speaker, pcm []int16) {
	t.Helper()
	buf := make([]byte, 2*worker.FrameSamples)
	start := time.Now()
	for i := 0; i*worker.FrameSamples < len(pcm); i++ {
		clear(buf)
		worker.PutPCM(buf, pcm[i*worker.FrameSamples:min((i+1)*worker.FrameSamples, len(pcm))])
		if err := s.SendAudio(context.Background(), buf); err != nil {
			t.Fatal(err)
		}
		// Pacing the source like a microphone, not waiting for a condition.
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond)))
	}
}

// listener records what a listener of one language receives.
type listener struct {
	*client.Listener

	mu        sync.Mutex
	audio     []int16
	arrivals  []time.Time
	captions  []client.Caption
	available bool
}

func (e *env) listen(id, lang string) *listener {
	e.t.Helper()
	l := &listener{Listener: client.NewListener(e.URL, id, lang)}
	l.OnAudio = func(f client.Frame) {
		l.mu.Lock()
		l.audio = append(l.audio, worker.PCM(f.Data)...)
		l.arrivals = append(l.arrivals, time.Now())
		l.mu.Unlock()
	}
	l.OnCaption = func(c client.Caption) {
		l.mu.Lock()
		l.captions = append(l.captions, c)
		l.mu.Unlock()
	}
	l.OnEvent = func(ev client.Event) {
		l.mu.Lock()
		switch ev.Type {
		case client.EventTranslationAvailable:
			l.available = true
		case client.EventTranslationUnavailable:
			l.available = false
		}
		l.mu.Unlock()
	}
	if err := l.Open(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = l.Close() })
	return l
}

func (l *listener) isAvailable() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.available
}

func (l *listener) samples() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.audio)
}

// finals returns the text of the final captions.
func (l *listener) finals() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, c := range l.captions {
		if c.Final {
			out = append(out, c.Text)
		}
	}
	return out
}

// startWorker opens a worker with engines and a registry of its own;
// configure, if given, changes its settings before it opens.
func (e *env) startWorker(engines *worker.Engines, configure ...func(*worker.Worker)) (*worker.Worker, *prometheus.Registry) {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	w := worker.NewWorker(e.URL, workerSecret)
	w.Engines, w.Registerer = engines, reg
	w.MinBackoff = 20 * time.Millisecond
	for _, f := range configure {
		f(w)
	}
	if err := w.Open(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = w.Close() })
	return w, reg
}

// metric sums the samples (counter values, or histogram counts) of a
// metric whose labels include all of want.
func metric(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// histogramMean returns the mean of a histogram's matching series.
func histogramMean(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	var sum, n float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := want[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			sum += m.GetHistogram().GetSampleSum()
			n += float64(m.GetHistogram().GetSampleCount())
		}
	}
	if n == 0 {
		return 0
	}
	return sum / n
}

// poll waits until cond holds, failing the test after timeout.
func poll(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	servertest.Poll(t, timeout, what, cond)
}

// requirePackages fails (never skips) when a Debian package is missing.
func requirePackages(t testing.TB, err error) {
	t.Helper()
	var me *worker.MissingError
	if errors.As(err, &me) {
		t.Fatalf("%v: run ./scripts/test, which installs the offline engines", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// espeak returns text spoken by espeak-ng in voice, at 16 kHz.
func espeak(t testing.TB, voice, text string) []int16 {
	t.Helper()
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Fatal("espeak-ng is not installed: run ./scripts/test")
	}
	e := worker.NewEspeak()
	e.Voices[voice] = voice
	pcm, err := e.Synthesize(context.Background(), text, voice)
	if err != nil {
		t.Fatal(err)
	}
	return pcm
}

// wer returns the word error rate of hyp against ref: the word-level edit
// distance over the reference's length.
func wer(ref, hyp []string) float64 {
	d := make([]int, len(hyp)+1)
	for j := range d {
		d[j] = j
	}
	for i := 1; i <= len(ref); i++ {
		prev := d[0]
		d[0] = i
		for j := 1; j <= len(hyp); j++ {
			cur := d[j]
			cost := 1
			if ref[i-1] == hyp[j-1] {
				cost = 0
			}
			d[j] = min(d[j]+1, d[j-1]+1, prev+cost)
			prev = cur
		}
	}
	return float64(d[len(hyp)]) / float64(len(ref))
}

// overlap returns the share of words of hyp that occur in ref.
func overlap(ref, hyp []string) float64 {
	set := map[string]bool{}
	for _, w := range ref {
		set[w] = true
	}
	n := 0
	for _, w := range hyp {
		if set[w] {
			n++
		}
	}
	if len(hyp) == 0 {
		return 0
	}
	return float64(n) / float64(len(hyp))
}

func words(lines []string) []string { return worker.Words(strings.Join(lines, " ")) }
