package http_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/servertest"
)

// TestCapabilities serves GET /capabilities from a whole server, with
// offers recorded in its presence as the worker protocol records them.
func TestCapabilities(t *testing.T) {
	srv := servertest.Start(t)
	get := func() (got struct {
		Tiers     []string            `json:"tiers"`
		Languages map[string][]string `json:"languages"`
		Timestamp int64               `json:"timestamp"`
	}) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/capabilities")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d", resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || got.Timestamp == 0 {
			t.Fatalf("body: %+v, %v", got, err)
		}
		return got
	}
	t.Run("NoWorker", func(t *testing.T) {
		if got := get(); !reflect.DeepEqual(got.Tiers, []string{"standard"}) || got.Languages == nil || len(got.Languages) != 0 {
			t.Fatalf("capabilities = %+v", got)
		}
	})
	t.Run("OK", func(t *testing.T) {
		ctx := t.Context()
		_ = srv.Presence.OfferLanguages(ctx, "c-1", pentecost.LanguageOffer{"en": {"es"}, pentecost.OfferTiersKey: {"standard"}})
		_ = srv.Presence.OfferLanguages(ctx, "c-2", pentecost.LanguageOffer{"en": {"ca", "es"}, pentecost.OfferTiersKey: {"premium"}})
		got := get()
		if !reflect.DeepEqual(got.Tiers, []string{"standard", "premium"}) || !reflect.DeepEqual(got.Languages, map[string][]string{"en": {"ca", "es"}}) {
			t.Fatalf("capabilities = %+v", got)
		}
	})
}

// TestCapabilities_NoPresence: a server whose Sessions cannot tell what
// workers offer serves the standard tier and knows no languages.
func TestCapabilities_NoPresence(t *testing.T) {
	ts := MustOpenServer(t)
	resp := ts.Do(t, Request{Method: "GET", Path: "/capabilities"})
	if resp.Status != http.StatusOK {
		t.Fatalf("status = %d: %s", resp.Status, resp.Body)
	}
	var got pentecost.Capabilities
	if err := json.Unmarshal(resp.Body, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Tiers, []string{"standard"}) || got.Languages == nil || len(got.Languages) != 0 {
		t.Fatalf("capabilities = %+v", got)
	}
}
