package client_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/client"
)

// relayWorker is a TEST-ONLY worker. It republishes a session's source
// audio, byte for byte, under another language tag. It translates nothing
// and must never be presented as a translator: it exists to exercise the
// worker path (session list, subscribe, claim, publish) end to end.
type relayWorker struct {
	*client.Worker
	sessionID, lang string

	in   chan []byte
	done chan struct{}

	mu       sync.Mutex
	sessions []client.WorkerSession
	source   int // source chunks received
	errs     []error
}

func newRelayWorker(t *testing.T, e *env, sessionID, lang string) *relayWorker {
	t.Helper()
	r := &relayWorker{Worker: client.NewWorker(e.URL, workerSecret), sessionID: sessionID, lang: lang,
		in: make(chan []byte, 1024), done: make(chan struct{})}
	r.MinBackoff = 20 * time.Millisecond
	r.OnSessions = func(s []client.WorkerSession) {
		r.mu.Lock()
		r.sessions = s
		r.mu.Unlock()
	}
	// Data is only valid during the callback, and publishing from it is
	// allowed but here done by a goroutine, as a real worker would.
	r.OnAudio = func(f client.Frame) {
		r.mu.Lock()
		r.source++
		r.mu.Unlock()
		r.in <- bytes.Clone(f.Data)
	}
	r.OnError = func(err error) {
		r.mu.Lock()
		r.errs = append(r.errs, err)
		r.mu.Unlock()
	}
	if err := r.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.done)
		for p := range r.in {
			_ = r.PublishAudio(context.Background(), sessionID, lang, p)
		}
	}()
	t.Cleanup(func() {
		_ = r.Close()
		close(r.in)
		<-r.done
	})
	return r
}

// wants reports whether the session list shows listeners of lang.
func (r *relayWorker) wants(lang string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sessions {
		if s.SessionID == r.sessionID && s.TargetLanguages[lang] > 0 {
			return true
		}
	}
	return false
}

func (r *relayWorker) sourceCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.source
}

func (r *relayWorker) errorCount(code string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, err := range r.errs {
		var e *client.Error
		if errors.As(err, &e) && e.Code == code {
			n++
		}
	}
	return n
}

// TestWorker_Relay: Spanish listeners are told no translation exists, hear
// nothing until a worker claims Spanish, then hear what the worker
// publishes, and are told again when the worker releases it.
func TestWorker_Relay(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	sp := openSpeaker(t, e, "alice", id, false)
	_, en := openListener(t, e, id, "en", false)
	_, es := openListener(t, e, id, "es", true)
	poll(t, "translationUnavailable", func() bool { return es.eventCount(client.EventTranslationUnavailable) == 1 })

	w := newRelayWorker(t, e, id, "es")
	poll(t, "demand for es", func() bool { return w.wants("es") })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := w.Subscribe(ctx, id, client.Live); err != nil {
		t.Fatal(err)
	}

	// Before the claim the relay's publishes are refused.
	send(t, sp, 0, 5)
	poll(t, "english frames", func() bool { return en.frameCount() == 5 })
	poll(t, "source frames", func() bool { return w.sourceCount() == 5 })
	poll(t, "refused publishes", func() bool { return w.errorCount("ACTION_NOT_ALLOWED") == 5 })

	if err := w.Claim(ctx, id, "es"); err != nil {
		t.Fatal(err)
	}
	poll(t, "translationAvailable", func() bool { return es.eventCount(client.EventTranslationAvailable) == 1 })
	send(t, sp, 5, 15)
	poll(t, "spanish frames", func() bool { return es.frameCount() == 10 })
	es.checkFrames(t, "es", 5, 10)
	if es.frames[0].Seq != 1 {
		t.Fatalf("first Spanish seq %d, want 1", es.frames[0].Seq)
	}
	poll(t, "english frames", func() bool { return en.frameCount() == 15 })
	en.checkFrames(t, "en", 0, 15)

	if err := w.Release(ctx, id, "es"); err != nil {
		t.Fatal(err)
	}
	poll(t, "translationUnavailable again", func() bool { return es.eventCount(client.EventTranslationUnavailable) == 2 })
}

// TestWorker_Reconnect: after its connection is cut, a worker subscribes
// again from the last chunk it had and claims its language again.
func TestWorker_Reconnect(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	w := newRelayWorker(t, e, id, "es")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := w.Subscribe(ctx, id, client.Live); err != nil {
		t.Fatal(err)
	}
	if err := w.Claim(ctx, id, "es"); err != nil {
		t.Fatal(err)
	}
	sp := openSpeaker(t, e, "alice", id, true)
	_, es := openListener(t, e, id, "es", false)

	send(t, sp, 0, 10)
	poll(t, "spanish frames", func() bool { return es.frameCount() == 10 })
	e.cutAll()
	send(t, sp, 10, 30)
	poll(t, "spanish frames after the cut", func() bool { return es.frameCount() == 30 })
	es.checkFrames(t, "es", 0, 30)
	if n := w.sourceCount(); n != 30 {
		t.Fatalf("worker got %d source chunks, want 30", n)
	}
}

// TestWorker_Refused: a wrong secret stops the worker at Open.
func TestWorker_Refused(t *testing.T) {
	e := newEnv(t)
	w := client.NewWorker(e.URL, "wrong")
	err := w.Open(context.Background())
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Code != "AUTH_INVALID_TOKEN" {
		t.Fatalf("Open = %v, want AUTH_INVALID_TOKEN", err)
	}
	if d := client.Classify(err); d.Retry {
		t.Fatalf("Classify(%v) = %+v, want stop", err, d)
	}
}
