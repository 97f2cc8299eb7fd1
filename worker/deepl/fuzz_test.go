package deepl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pentecost/pentecost/worker/deepl"
	"github.com/pentecost/pentecost/worker/engine"
)

// The fuzz targets answer the translator's requests with what DeepL (or
// something in its place) might send; their corpora are in testdata/fuzz.

// FuzzTranslate: a translation is a 2xx answer's one translation, as it
// came; a failure is an *engine.Error with the code of the status, or
// ErrBadResponse for a 2xx answer it cannot use.
func FuzzTranslate(f *testing.F) {
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		status = 100 + (status%500+500)%500 // a status code, 100 to 599
		tr := deepl.New("key:fx")
		tr.Attempts = 1
		tr.Client = &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {retryAfter}},
				Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
		})}
		got, err := tr.Translate(context.Background(), "The Lord is my shepherd.", "en", "es")
		if err != nil {
			var e *engine.Error
			switch {
			case !errors.As(err, &e) || e.Engine != "deepl":
				t.Fatalf("error %v is not an engine.Error of deepl", err)
			case status/100 == 2 && e.Code != engine.ErrBadResponse:
				t.Fatalf("status %d: code %s, want %s", status, e.Code, engine.ErrBadResponse)
			case status/100 != 2 && e.Code != engine.StatusCode(status):
				t.Fatalf("status %d: code %s, want %s", status, e.Code, engine.StatusCode(status))
			case e.RetryAfter < 0:
				t.Fatalf("RetryAfter %v from %q", e.RetryAfter, retryAfter)
			}
			return
		}
		if status/100 != 2 {
			t.Fatalf("status %d: translated %q", status, got)
		}
		var out struct {
			Translations []struct {
				Text string `json:"text"`
			} `json:"translations"`
		}
		if err := json.Unmarshal(body, &out); err != nil || len(out.Translations) != 1 || got != out.Translations[0].Text || strings.TrimSpace(got) == "" {
			t.Fatalf("translated %q from %s", got, body)
		}
	})
}

// FuzzGlossary answers the glossary list and creation with list and
// created, and checks which glossary the translation then uses: the
// listed one of the pair's name and languages, else the one created, and
// that one from then on; never none, since the pair has entries. Or the
// failure is ErrBadResponse.
func FuzzGlossary(f *testing.F) {
	f.Fuzz(func(t *testing.T, list, created []byte) {
		tr := deepl.New("key")
		tr.Attempts = 1
		tr.Glossaries = map[string][]deepl.Entry{"en-es": {{Source: "Holy Spirit", Target: "Espíritu Santo"}, {Source: "Bethel"}}}
		var (
			mu       sync.Mutex
			lists    int
			creates  int
			usedID   string
			idPassed bool
		)
		tr.Client = &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			defer mu.Unlock()
			answer := func(b []byte) (*http.Response, error) {
				return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(b)), Request: r}, nil
			}
			switch {
			case r.Method == http.MethodGet && r.URL.Path == "/v2/glossaries":
				lists++
				return answer(list)
			case r.Method == http.MethodPost && r.URL.Path == "/v2/glossaries":
				creates++
				return answer(created)
			case r.URL.Path == "/v2/translate":
				var req struct {
					GlossaryID *string `json:"glossary_id"`
				}
				b, _ := io.ReadAll(r.Body)
				if err := json.Unmarshal(b, &req); err != nil {
					t.Fatalf("translate request %s: %v", b, err)
				}
				usedID, idPassed = "", req.GlossaryID != nil
				if idPassed {
					usedID = *req.GlossaryID
				}
				return answer([]byte(`{"translations":[{"detected_source_language":"EN","text":"El Espíritu Santo."}]}`))
			}
			t.Fatalf("unexpected request %s %s", r.Method, r.URL)
			return nil, nil
		})}

		_, err := tr.Translate(context.Background(), "The Holy Spirit.", "en", "es")
		if err != nil {
			var e *engine.Error
			if !errors.As(err, &e) || e.Code != engine.ErrBadResponse {
				t.Fatalf("error %v, want %s", err, engine.ErrBadResponse)
			}
			return
		}
		var l struct {
			Glossaries []struct {
				ID     string `json:"glossary_id"`
				Name   string `json:"name"`
				Source string `json:"source_lang"`
				Target string `json:"target_lang"`
			} `json:"glossaries"`
		}
		if err := json.Unmarshal(list, &l); err != nil {
			t.Fatalf("translated after a glossary list that is not JSON: %s", list)
		}
		want, listed := "", false
		for _, g := range l.Glossaries {
			if g.Name == tr.GlossaryName("en", "es") && strings.EqualFold(g.Source, "en") && strings.EqualFold(g.Target, "es") && g.ID != "" {
				want, listed = g.ID, true
				break
			}
		}
		if !listed {
			var c struct {
				ID string `json:"glossary_id"`
			}
			if err := json.Unmarshal(created, &c); err != nil || c.ID == "" {
				t.Fatalf("translated after a creation without an id: %s", created)
			}
			want = c.ID
		}
		if lists != 1 || listed && creates != 0 || !listed && creates != 1 {
			t.Fatalf("%d lists and %d creations (listed: %v)", lists, creates, listed)
		}
		if !idPassed || usedID != want {
			t.Fatalf("translated with glossary %q (sent: %v), want %q", usedID, idPassed, want)
		}

		// The glossary is settled: the next translation asks nothing more.
		if _, err := tr.Translate(context.Background(), "The Holy Spirit.", "en", "es"); err != nil {
			t.Fatal(err)
		}
		if lists != 1 || creates > 1 || usedID != want {
			t.Fatalf("second translation: %d lists, %d creations, glossary %q", lists, creates, usedID)
		}
	})
}
