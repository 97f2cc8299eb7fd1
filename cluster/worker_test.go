package cluster_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/redistest"
	"github.com/pentecost/pentecost/worker"
)

// workerCredential is the secret the test node accepts from workers.
const workerCredential = "cluster-test-worker-credential"

// workerProc is one `pentecost worker` child process.
type workerProc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startWorker starts `pentecost worker` against the node with the offline
// engines of engines (a configuration file). It is killed when the test
// ends.
func startWorker(t *testing.T, name string, n *node, engines string) *workerProc {
	t.Helper()
	cmd := exec.Command(binPath, "worker", "--server", n.url, "--engines", engines, "--log-format", "text")
	// TMPDIR of its own, so that what a killed worker cannot clean up (the
	// utterance it was recognising) stays out of the machine's temporary directory.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + t.TempDir(),
		"PENTECOST_WORKER_CREDENTIAL=" + workerCredential, "LOG_LEVEL=info"}
	w := &workerProc{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = w.out, w.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		if !w.exited() {
			_ = w.cmd.Process.Kill()
		}
		<-w.done
	})
	return w
}

func (w *workerProc) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// kill ends the worker with SIGKILL, as a crash or the OOM killer would,
// and waits for it. It fails the test when the worker had already exited:
// the test would then not be killing a worker that holds a claim.
func (w *workerProc) kill(t *testing.T) {
	t.Helper()
	if w.exited() {
		t.Fatalf("%s exited before it was killed:\n%s", w.name, tail(w.out.String()))
	}
	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %s: %v", w.name, err)
	}
	<-w.done
	if s := w.cmd.ProcessState.String(); s != "signal: killed" {
		t.Fatalf("%s ended with %q, want signal: killed", w.name, s)
	}
}

// tail returns the last lines of a process's output, for failure messages.
func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// spanish records what a Spanish listener receives.
type spanish struct {
	mu        sync.Mutex
	audio     []int16
	captions  []string // final captions
	available bool
	events    []string // translationAvailable / translationUnavailable, in order
}

// listenSpanish joins session id in Spanish at url.
func listenSpanish(t *testing.T, url, id string) *spanish {
	t.Helper()
	s := &spanish{}
	l := client.NewListener(url, id, "es")
	l.OnAudio = func(f client.Frame) {
		s.mu.Lock()
		s.audio = append(s.audio, worker.PCM(f.Data)...)
		s.mu.Unlock()
	}
	l.OnCaption = func(c client.Caption) {
		if c.Final {
			s.mu.Lock()
			s.captions = append(s.captions, c.Text)
			s.mu.Unlock()
		}
	}
	l.OnEvent = func(e client.Event) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch e.Type {
		case client.EventTranslationAvailable:
			s.available = true
		case client.EventTranslationUnavailable:
			s.available = false
		default:
			return
		}
		s.events = append(s.events, e.Type)
	}
	if err := l.Open(ctx(t, 10*time.Second)); err != nil {
		t.Fatalf("Spanish listener: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return s
}

// state returns copies of what the listener has received so far.
func (s *spanish) state() (audio []int16, captions []string, available bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int16(nil), s.audio...), append([]string(nil), s.captions...), s.available
}

func (s *spanish) isAvailable() bool { _, _, a := s.state(); return a }

func (s *spanish) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d samples, captions %q, events %v", len(s.audio), s.captions, s.events)
}

// espeakPCM returns text spoken by espeak-ng at 16 kHz.
func espeakPCM(t *testing.T, voice, text string) []int16 {
	t.Helper()
	e := worker.NewEspeak()
	e.Voices[voice] = voice
	pcm, err := e.Synthesize(ctx(t, 10*time.Second), text, voice)
	if err != nil {
		t.Fatalf("espeak-ng (run ./scripts/test, which installs the offline engines): %v", err)
	}
	return pcm
}

// utterance is a sentence as a speaker says it: half a second of silence,
// the speech, then a second of silence so the worker's VAD ends it.
func utterance(t *testing.T, text string) []int16 {
	t.Helper()
	pcm := make([]int16, worker.SampleRate/2)
	pcm = append(pcm, espeakPCM(t, "en-us", text)...)
	return append(pcm, make([]int16, worker.SampleRate)...)
}

// streamPCM sends pcm as a microphone would: 20 ms chunks in real time.
func streamPCM(t *testing.T, sp *client.Speaker, pcm []int16) {
	t.Helper()
	c := ctx(t, 30*time.Second)
	buf := make([]byte, 2*worker.FrameSamples)
	start := time.Now()
	for i := 0; i*worker.FrameSamples < len(pcm); i++ {
		clear(buf)
		worker.PutPCM(buf, pcm[i*worker.FrameSamples:min((i+1)*worker.FrameSamples, len(pcm))])
		if err := sp.SendAudio(c, buf); err != nil {
			t.Fatalf("send audio: %v", err)
		}
		// Pacing the source like a microphone, not waiting for a condition.
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond)))
	}
}

// TestWorkerKilled: the `pentecost worker` process producing Spanish is
// killed with SIGKILL mid-session. The node notices its connection close
// and releases its claim (Spanish listeners are told translation is
// unavailable, without waiting for a heartbeat timeout); a worker process
// started afresh claims Spanish again and the listener hears the speaker's
// next sentence in Spanish, spoken in full.
func TestWorkerKilled(t *testing.T) {
	start := time.Now()
	dir := t.TempDir()
	engines := filepath.Join(dir, "engines.conf")
	corpus, err := filepath.Abs("../worker/testdata/sermon-corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	// English to Spanish only, with the sermon corpus as the recogniser's
	// domain vocabulary, as the worker package's end-to-end test has it.
	conf := "pocketsphinx.corpus=" + corpus + "\n" +
		"translate.en-ca=\ntranslate.en-gl=\nsynthesize.ca=\nsynthesize.gl=\n"
	if err := os.WriteFile(engines, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// Two sentences of the corpus, with no content word in common, so that
	// the captions show which one was translated.
	first := utterance(t, "Good morning and welcome to our church.")
	second := utterance(t, "The Lord is my shepherd and I shall not want.")

	srv := redistest.Start(t)
	token := mintToken(t, srv.URL(), "speaker")
	n := startNode(t, "A", srv.URL(), "WORKER_CREDENTIALS="+workerCredential)
	sp := speak(t, n.url, token)
	es := listenSpanish(t, n.url, sp.Session())

	// until polls cond, failing with the listener's state and the output
	// of the processes when it does not hold in time or a worker exits.
	var workers []*workerProc
	until := func(timeout time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !cond() {
			var why string
			for _, w := range workers {
				if w.exited() && w.cmd.ProcessState.String() != "signal: killed" {
					why = fmt.Sprintf("%s exited (%s)", w.name, w.cmd.ProcessState)
				}
			}
			if why == "" && time.Now().After(deadline) {
				why = fmt.Sprintf("timed out after %v", timeout)
			}
			if why != "" {
				var b strings.Builder
				fmt.Fprintf(&b, "%s waiting for %s; listener: %s", why, what, es)
				for _, w := range workers {
					fmt.Fprintf(&b, "\n--- %s:\n%s", w.name, tail(w.out.String()))
				}
				fmt.Fprintf(&b, "\n--- node %s:\n%s", n.name, tail(n.out.String()))
				t.Fatal(b.String())
			}
			time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
		}
	}
	// hear waits until the listener has new final captions (after the
	// first fromCaption) and the whole Spanish speech of them (after the
	// first fromSample samples; the worker publishes a caption, then its
	// audio in real time), and checks that speech.
	hear := func(what string, fromCaption, fromSample int) []string {
		t.Helper()
		var want int
		var audio []int16
		var captions, spoken []string // spoken: the new captions whose speech is measured
		until(40*time.Second, what, func() bool {
			audio, captions, _ = es.state() // one snapshot: a caption may follow at once
			if len(captions) <= fromCaption {
				return false
			}
			if len(captions)-fromCaption != len(spoken) {
				spoken, want = captions[fromCaption:], 0
				for _, c := range spoken {
					want += len(espeakPCM(t, "es", c))
				}
			}
			return len(audio)-fromSample >= want
		})
		got := audio[fromSample:]
		// Each utterance's last frame is padded to 20 ms.
		if len(got) > want+len(spoken)*worker.FrameSamples {
			t.Fatalf("%s: %d Spanish samples for captions %q, want %d (+ frame padding)", what, len(got), spoken, want)
		}
		if rms := worker.RMS(got); rms < 300 {
			t.Fatalf("%s: Spanish audio RMS %.0f: silent", what, rms)
		}
		return spoken
	}

	w1 := startWorker(t, "worker 1", n, engines)
	workers = append(workers, w1)
	until(30*time.Second, "worker 1 to claim Spanish", es.isAvailable)
	streamPCM(t, sp, first)
	before := hear("Spanish of the first sentence", 0, 0)
	t.Logf("before the kill: %q", before)

	// The worker dies between sentences, holding its claim.
	w1.kill(t)
	killed := time.Now()
	// The heartbeat timeout is 90 s: a release within 5 s is the node
	// seeing the connection close.
	until(5*time.Second, "the node to release worker 1's claim", func() bool { return !es.isAvailable() })
	t.Logf("Spanish unavailable %v after the kill", time.Since(killed).Round(time.Millisecond))
	// Operators see it too: the node logs the release at info level.
	until(5*time.Second, "the node to log worker 1's departure", func() bool {
		out := n.out.String()
		return strings.Contains(out, "worker disconnected") && strings.Contains(out, "language released")
	})
	audio, captions, _ := es.state()

	w2 := startWorker(t, "worker 2", n, engines)
	workers = append(workers, w2)
	until(30*time.Second, "the restarted worker to claim Spanish", es.isAvailable)
	if a, c, _ := es.state(); len(a) != len(audio) || len(c) != len(captions) {
		t.Fatalf("Spanish arrived while no worker ran: %s", es)
	}
	streamPCM(t, sp, second)
	after := hear("Spanish of the second sentence", len(captions), len(audio))
	t.Logf("after the restart: %q", after)

	// The new worker subscribed live: it translated the second sentence,
	// not the first again from the session's history.
	// Any one content word will do: a busy machine can split the sentence
	// where the worker's VAD sees a stall as a pause.
	said := strings.ToLower(strings.Join(after, " "))
	if !strings.Contains(said, "señor") && !strings.Contains(said, "pastor") && !strings.Contains(said, "querr") {
		t.Errorf("captions after the restart %q translate none of \"Lord\", \"shepherd\", \"want\"", after)
	}
	es.mu.Lock()
	events := strings.Join(es.events, " ")
	es.mu.Unlock()
	if want := "translationUnavailable translationAvailable translationUnavailable translationAvailable"; events != want {
		t.Errorf("listener events %q, want %q", events, want)
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}
