package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pentecost/pentecost/client"
)

// audioWorker is a Worker that counts the source audio of each session.
type audioWorker struct {
	*client.Worker
	mu    sync.Mutex
	audio map[string]int
}

func newAudioWorker(e *env) *audioWorker {
	w := &audioWorker{Worker: client.NewWorker(e.URL, workerSecret), audio: map[string]int{}}
	w.OnAudio = func(f client.Frame) {
		w.mu.Lock()
		w.audio[f.SessionID]++
		w.mu.Unlock()
	}
	return w
}

func (w *audioWorker) count(id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.audio[id]
}

// TestWorker_SubscribeWhileReconnecting: a Subscribe made while the worker
// reconnects is made once, on the new connection.
func TestWorker_SubscribeWhileReconnecting(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	sp := openSpeaker(t, e, "alice", id, false)
	w := newAudioWorker(e)
	w.MinBackoff = 0
	// The reconnection waits at the dialer until gate opens.
	gate, redialing := make(chan struct{}), make(chan struct{})
	var dials sync.Mutex
	dialed := 0
	var d net.Dialer
	w.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Lock()
		dialed++
		n := dialed
		dials.Unlock()
		if n == 2 {
			close(redialing)
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return d.DialContext(ctx, network, addr)
	}}}
	g := gateSwitch(t, w.Worker, "none")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := w.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })

	e.cutAll()
	select {
	case <-redialing:
	case <-ctx.Done():
		t.Fatal("no reconnection")
	}
	errc := make(chan error, 1)
	go func() { errc <- w.Subscribe(ctx, id, client.Live) }()
	select {
	case <-g.waits:
	case err := <-errc:
		t.Fatalf("Subscribe returned %v while reconnecting", err)
	}
	close(gate)
	if err := <-errc; err != nil {
		t.Fatalf("Subscribe = %v", err)
	}
	send(t, sp, 0, 5)
	poll(t, "source audio", func() bool { return w.count(id) == 5 })
}

// TestWorker_TypedSessionID: requests naming a session as typed get their
// answers, and its audio arrives under the canonical ID.
func TestWorker_TypedSessionID(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	typed := " " + strings.ToUpper(strings.ReplaceAll(id, "-", "_")) + " "
	sp := openSpeaker(t, e, "alice", id, false)
	_, es := openListener(t, e, id, "es", false)
	poll(t, "translationUnavailable", func() bool { return es.eventCount(client.EventTranslationUnavailable) == 1 })
	w := newAudioWorker(e)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := w.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })

	if err := w.Subscribe(ctx, typed, client.Live); err != nil {
		t.Fatalf("Subscribe(%q) = %v", typed, err)
	}
	if err := w.Claim(ctx, typed, "ES"); err != nil {
		t.Fatalf("Claim(%q, ES) = %v", typed, err)
	}
	poll(t, "translationAvailable", func() bool { return es.eventCount(client.EventTranslationAvailable) == 1 })
	send(t, sp, 0, 3)
	poll(t, "source audio", func() bool { return w.count(id) == 3 })
	if err := w.Release(ctx, typed, " Es"); err != nil {
		t.Fatalf("Release = %v", err)
	}
	poll(t, "translationUnavailable", func() bool { return es.eventCount(client.EventTranslationUnavailable) == 2 })
	if err := w.Unsubscribe(ctx, typed); err != nil {
		t.Fatalf("Unsubscribe = %v", err)
	}
	// Subscribed again, the session is known under one ID.
	if err := w.Subscribe(ctx, id, client.Live); err != nil {
		t.Fatalf("Subscribe(%q) again = %v", id, err)
	}

	var ae *client.Error
	if err := w.Subscribe(ctx, "no", client.Live); !errors.As(err, &ae) || ae.Code != "INVALID_SESSION_ID" {
		t.Fatalf("Subscribe(no) = %v, want INVALID_SESSION_ID", err)
	}
}
