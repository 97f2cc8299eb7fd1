package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/pentecost/pentecost/client"
)

// TestWorker_ReportLanguageStatus: a report reaches the speaker's Status,
// and tiers offered with OfferTiers reach GET /capabilities, again after
// a reconnect.
func TestWorker_ReportLanguageStatus(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	var mu sync.Mutex
	var last client.ProducedLanguage
	sp := client.NewSpeaker(e.URL, e.token("alice"))
	sp.SessionID = id
	sp.OnStatus = func(st client.Status) {
		mu.Lock()
		defer mu.Unlock()
		if l, ok := st.Languages["es"]; ok {
			last = l
		}
	}
	if err := sp.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })

	w := client.NewWorker(e.URL, workerSecret)
	w.MinBackoff = 0
	errs := make(chan error, 10)
	w.OnError = func(err error) { errs <- err }
	if err := w.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	w.OfferTiers([]string{"standard", "premium"})
	if err := w.OfferLanguages(t.Context(), map[string][]string{"en": {"es"}}); err != nil {
		t.Fatal(err)
	}
	tiers := func() []string {
		resp, err := http.Get(e.URL + "/capabilities")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var caps struct{ Tiers []string }
		if err := json.NewDecoder(resp.Body).Decode(&caps); err != nil {
			t.Fatal(err)
		}
		return caps.Tiers
	}
	if got := tiers(); !slices.Equal(got, []string{"standard", "premium"}) {
		t.Fatalf("tiers = %v", got)
	}

	if err := w.Subscribe(t.Context(), id, 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Claim(t.Context(), id, "es"); err != nil {
		t.Fatal(err)
	}
	if err := w.ReportLanguageStatus(id, "es", client.LanguageStatus{Stage: "translate", ErrorCode: "timeout", LatencyMs: 4200}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the report at the speaker", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return last.ErrorCode == "timeout"
	})
	mu.Lock()
	if last.Stage != "translate" || last.LatencyMs != 4200 || last.WorkerID == "" || last.UpdatedAt.IsZero() {
		t.Errorf("speaker's status of es = %+v", last)
	}
	mu.Unlock()

	t.Run("ErrValidation", func(t *testing.T) {
		if err := w.ReportLanguageStatus(id, "es", client.LanguageStatus{ErrorCode: "HTTP 503"}); err != nil {
			t.Fatal(err)
		}
		var ce *client.Error
		if err := <-errs; !errors.As(err, &ce) || ce.Code != "VALIDATION_INVALID_FIELD" {
			t.Fatalf("OnError = %v", err)
		}
	})

	t.Run("TiersAfterReconnect", func(t *testing.T) {
		if n := e.cutAll(); n == 0 {
			t.Fatal("no connection cut")
		}
		// The worker's offer goes when its connection closes and comes
		// back with the new one, tiers included.
		poll(t, "the worker to reconnect", func() bool { return len(e.Conns()) >= 2 })
		poll(t, "the offer again after the reconnect", func() bool { return slices.Contains(tiers(), "premium") })
	})
}
