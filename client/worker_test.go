package client_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
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

func newRelayWorker(t *testing.T, e *env, sessionID, lang string, configure ...func(*client.Worker)) *relayWorker {
	t.Helper()
	r := &relayWorker{Worker: client.NewWorker(e.URL, workerSecret), sessionID: sessionID, lang: lang,
		in: make(chan []byte, 1024), done: make(chan struct{})}
	r.MinBackoff = 20 * time.Millisecond
	for _, f := range configure {
		f(r.Worker)
	}
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

// conflict reports whether err is a CONFLICT naming the claim of lang in
// session id.
func conflict(err error, id, lang string) bool {
	var e *client.Error
	return errors.As(err, &e) && e.Code == "CONFLICT" && e.HTTPStatus == 409 &&
		e.SessionID == id && e.TargetLanguage == lang && e.Action == "claimLanguage"
}

// TestWorker_ClaimExclusive: two workers race for Spanish; one wins, the
// other gets CONFLICT, and the Spanish listener hears every chunk once.
func TestWorker_ClaimExclusive(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	sp := openSpeaker(t, e, "alice", id, true)
	_, es := openListener(t, e, id, "es", false)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	workers := []*relayWorker{newRelayWorker(t, e, id, "es"), newRelayWorker(t, e, id, "es")}
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		if err := w.Subscribe(ctx, id, client.Live); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs[i] = w.ClaimExclusive(ctx, id, "es") })
	}
	wg.Wait()
	winner, loser := workers[0], workers[1]
	switch {
	case errs[0] == nil && conflict(errs[1], id, "es"):
	case errs[1] == nil && conflict(errs[0], id, "es"):
		winner, loser = loser, winner
	default:
		t.Fatalf("claims = %v, %v; want one nil and one CONFLICT", errs[0], errs[1])
	}

	// Both relay every chunk; only the winner's reach listeners.
	send(t, sp, 0, 20)
	poll(t, "loser's refused publishes", func() bool { return loser.errorCount("ACTION_NOT_ALLOWED") == 20 })
	poll(t, "spanish frames", func() bool { return es.frameCount() == 20 })
	es.checkFrames(t, "es", 0, 20)
	if n := winner.errorCount("ACTION_NOT_ALLOWED"); n != 0 {
		t.Fatalf("winner refused %d times", n)
	}

	t.Run("RestoredAfterCut", func(t *testing.T) {
		// The winner reclaims on its new connection, naming the old one,
		// even if the server has not yet noticed the old one is gone.
		e.cutAll()
		send(t, sp, 20, 30)
		poll(t, "spanish frames after the cut", func() bool { return es.frameCount() == 30 })
		es.checkFrames(t, "es", 0, 30)
		late := newRelayWorker(t, e, id, "es")
		if err := late.ClaimExclusive(ctx, id, "es"); !conflict(err, id, "es") {
			t.Fatalf("another worker's claim after the cut = %v, want CONFLICT", err)
		}
	})
}

// TestWorker_ClaimLost: a worker whose connection was lost finds its
// exclusive language taken by another worker when it comes back; it is
// told through OnClaimLost and no longer publishes.
func TestWorker_ClaimLost(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	// a's reconnection waits at the dialer until gate opens: the test, not
	// the clock, decides when it comes back.
	gate := make(chan struct{})
	var dials sync.Mutex
	dialed := 0
	lost := make(chan error, 1)
	a := newRelayWorker(t, e, id, "es", func(w *client.Worker) {
		var d net.Dialer
		w.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Lock()
			dialed++
			first := dialed == 1
			dials.Unlock()
			if !first {
				select {
				case <-gate:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return d.DialContext(ctx, network, addr)
		}}}
		w.OnClaimLost = func(sessionID, lang string, err error) {
			// Callbacks never run concurrently: this one holds their lock.
			if !client.CallbacksHeld(w) {
				t.Error("OnClaimLost called without the callback lock")
			}
			if sessionID == id && lang == "es" {
				lost <- err
			}
		}
	})
	if err := a.ClaimExclusive(ctx, id, "es"); err != nil {
		t.Fatal(err)
	}
	e.cutAll()
	// b connects after the cut, so its answers come from a live connection
	// (a request on a connection being lost returns nil and is retried on
	// the next one). Once the server has noticed a is gone, b takes the
	// language.
	b := newRelayWorker(t, e, id, "es")
	poll(t, "b's claim", func() bool {
		err := b.ClaimExclusive(ctx, id, "es")
		if err != nil && !conflict(err, id, "es") {
			t.Fatalf("b's claim = %v", err)
		}
		return err == nil
	})
	close(gate)
	select {
	case err := <-lost:
		if !conflict(err, id, "es") {
			t.Fatalf("OnClaimLost err = %v, want CONFLICT", err)
		}
	case <-ctx.Done():
		t.Fatal("OnClaimLost not called")
	}
	// a forgot the claim: its publishes are refused.
	if err := a.PublishAudio(ctx, id, "es", chunk(1, 640)); err != nil {
		t.Fatal(err)
	}
	poll(t, "a's refused publish", func() bool { return a.errorCount("ACTION_NOT_ALLOWED") == 1 })
}

// TestWorker_OfferLanguages: the offer reaches the server's presence, a
// refused one leaves the previous in place, and after a lost connection
// the Worker offers again on the new one (the server dropped the old
// connection's offer).
func TestWorker_OfferLanguages(t *testing.T) {
	e := newEnv(t)
	w := client.NewWorker(e.URL, workerSecret)
	w.MinBackoff = 20 * time.Millisecond
	var mu sync.Mutex
	installs := 0
	client.SetHook(w, func(point string) {
		if point == "installed" {
			mu.Lock()
			installs++
			mu.Unlock()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := w.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	offered := func() []string {
		langs, err := e.Presence.OfferedLanguages(ctx, "en")
		if err != nil {
			t.Fatal(err)
		}
		return langs
	}
	if err := w.OfferLanguages(ctx, map[string][]string{"en": {"es", "ca"}}); err != nil {
		t.Fatal(err)
	}
	if got := offered(); !reflect.DeepEqual(got, []string{"ca", "es"}) {
		t.Fatalf("offered = %v", got)
	}
	var ce *client.Error
	if err := w.OfferLanguages(ctx, map[string][]string{"en": {"klingon"}}); !errors.As(err, &ce) || ce.Code != "INVALID_LANGUAGE" {
		t.Fatalf("bad offer: %v, want INVALID_LANGUAGE", err)
	}

	e.cutAll()
	// Installed again (its prepare offered), and the old connection has
	// left (its offer withdrawn): the only worker connection is the new one.
	poll(t, "new connection installed, old one gone", func() bool {
		mu.Lock()
		n := installs
		mu.Unlock()
		return n >= 2 && e.metric("pentecost_ws_connections") == 1
	})
	if got := offered(); !reflect.DeepEqual(got, []string{"ca", "es"}) {
		t.Fatalf("offered after reconnecting = %v, want the last good offer", got)
	}
}

// TestWorker_PublishAudioAt: the source time reaches listeners as the
// frame's timestamp.
func TestWorker_PublishAudioAt(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	w := newRelayWorker(t, e, id, "es")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := w.Claim(ctx, id, "es"); err != nil {
		t.Fatal(err)
	}
	_, js := openListener(t, e, id, "es", false)
	_, bin := openListener(t, e, id, "es", true)
	// No speaker yet: the join says so.
	js.mu.Lock()
	if len(js.joins) != 1 || js.joins[0].SpeakerConnected == nil || *js.joins[0].SpeakerConnected {
		t.Fatalf("joins = %+v, want one with SpeakerConnected false", js.joins)
	}
	js.mu.Unlock()
	spoken := time.Now().Add(-2 * time.Second).Truncate(time.Millisecond)
	if err := w.PublishAudioAt(ctx, id, "es", chunk(1, 640), spoken); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*recorder{"json": js, "binary": bin} {
		poll(t, name+" frame", func() bool { return r.frameCount() == 1 })
		r.mu.Lock()
		got := r.frames[0].Timestamp
		r.mu.Unlock()
		if !got.Equal(spoken) {
			t.Fatalf("%s: timestamp %v, want the source time %v", name, got, spoken)
		}
	}
}
