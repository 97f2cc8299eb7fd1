package deepl_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker/deepl"
	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/enginetest"
)

// fake is a DeepL API v2 server that checks requests against the
// documented shapes (testdata/*_request.json) and answers in the
// documented ones (testdata/*_response.json).
type fake struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	translates []map[string]any // the bodies of POST /v2/translate
	created    []map[string]any // the bodies of POST /v2/glossaries
	glossaries []map[string]any // what GET /v2/glossaries lists
	hosts      []string
	fail       []func(w http.ResponseWriter) bool // consumed one per request
}

// fixtureKeys returns the keys of a fixture object: a request may hold no
// other.
func fixtureKeys(t *testing.T, name string) map[string]bool {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for k := range m {
		keys[k] = true
	}
	return keys
}

func fixture(t *testing.T, name string) map[string]any {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

var translations = map[string]string{
	enginetest.TranslatorSentence: "Buenos días y bienvenidos a todos.",
	"The Holy Spirit came.":       "Vino el Espíritu Santo.",
}

func newFake(t *testing.T) *fake {
	f := &fake{t: t}
	trKeys, glKeys := fixtureKeys(t, "translate_request.json"), fixtureKeys(t, "glossary_create_request.json")
	respKeys := fixtureKeys(t, "glossary_create_response.json")
	decode := func(w http.ResponseWriter, r *http.Request, allowed map[string]bool) map[string]any {
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, `{"message":"Content-Type"}`, http.StatusBadRequest)
			return nil
		}
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, `{"message":"Bad request"}`, http.StatusBadRequest)
			return nil
		}
		for k := range m {
			if !allowed[k] {
				t.Errorf("request field %q is not in the documented shape", k)
			}
		}
		return m
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/translate", func(w http.ResponseWriter, r *http.Request) {
		m := decode(w, r, trKeys)
		if m == nil {
			return
		}
		f.mu.Lock()
		f.translates = append(f.translates, m)
		f.mu.Unlock()
		texts, _ := m["text"].([]any)
		if len(texts) != 1 || m["target_lang"] == nil {
			http.Error(w, `{"message":"Value for 'target_lang' not supported."}`, http.StatusBadRequest)
			return
		}
		text := texts[0].(string)
		out := translations[text]
		if out == "" {
			out = "[" + m["target_lang"].(string) + "] " + text
		}
		resp := fixture(t, "translate_response.json")
		tr := resp["translations"].([]any)[0].(map[string]any)
		tr["text"], tr["detected_source_language"] = out, m["source_lang"]
		json.NewEncoder(w).Encode(resp)
	})
	mux.HandleFunc("GET /v2/glossaries", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"glossaries": append([]map[string]any{}, f.glossaries...)})
	})
	mux.HandleFunc("POST /v2/glossaries", func(w http.ResponseWriter, r *http.Request) {
		m := decode(w, r, glKeys)
		if m == nil {
			return
		}
		for k := range glKeys {
			if _, ok := m[k]; !ok && k != "entries_format" {
				http.Error(w, `{"message":"Missing `+k+`"}`, http.StatusBadRequest)
				return
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.created = append(f.created, m)
		g := fixture(t, "glossary_create_response.json")
		g["glossary_id"] = "gl-" + string(rune('a'+len(f.created)))
		g["name"], g["source_lang"], g["target_lang"] = m["name"], m["source_lang"], m["target_lang"]
		g["entry_count"] = strings.Count(m["entries"].(string), "\n") + 1
		for k := range g {
			if !respKeys[k] {
				t.Errorf("fake answers field %q outside the documented shape", k)
			}
		}
		f.glossaries = append(f.glossaries, g)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(g)
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hosts = append(f.hosts, r.Host)
		var step func(http.ResponseWriter) bool
		if len(f.fail) > 0 {
			step, f.fail = f.fail[0], f.fail[1:]
		}
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "DeepL-Auth-Key "+testKey(r.Host) {
			http.Error(w, `{"message":"Wrong endpoint"}`, http.StatusForbidden)
			return
		}
		if step != nil && step(w) {
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// testKey is the key the fake expects on each host: a free key on the
// free endpoint, a Pro key elsewhere.
func testKey(host string) string {
	if host == "api-free.deepl.com" {
		return "k-free:fx"
	}
	return "k-pro"
}

// client sends every request to the fake whatever its host, keeping the
// Host header, so that the endpoint choice shows in f.hosts.
func (f *fake) client() *http.Client {
	u, _ := url.Parse(f.srv.URL)
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Host = r.URL.Host
		r.URL.Scheme, r.URL.Host = u.Scheme, u.Host
		return http.DefaultTransport.RoundTrip(r)
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return rt(r) }

func newTranslator(f *fake, key string) *deepl.Translator {
	tr := deepl.New(key)
	tr.Client = f.client()
	tr.MinBackoff, tr.MaxBackoff = time.Millisecond, 5*time.Millisecond
	return tr
}

func status(code int, header ...string) func(w http.ResponseWriter) bool {
	return func(w http.ResponseWriter) bool {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		w.Write([]byte(`{"message":"no"}`))
		return true
	}
}

func TestSuite(t *testing.T) {
	f := newFake(t)
	enginetest.RunTranslator(t, newTranslator(f, "k-pro"), "en", "es")
}

func TestEndpoint(t *testing.T) {
	for _, tc := range []struct{ name, key, url, host string }{
		{"Free", "k-free:fx", "", "api-free.deepl.com"},
		{"Pro", "k-pro", "", "api.deepl.com"},
		{"Configured", "k-pro", "https://api.deepl.com/", "api.deepl.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			tr := newTranslator(f, tc.key)
			tr.URL = tc.url
			got, err := tr.Translate(context.Background(), enginetest.TranslatorSentence, "en", "es")
			if err != nil || got != "Buenos días y bienvenidos a todos." {
				t.Fatalf("%q %v", got, err)
			}
			if len(f.hosts) != 1 || f.hosts[0] != tc.host {
				t.Fatalf("requests went to %v, want %s", f.hosts, tc.host)
			}
		})
	}
}

func TestRequest(t *testing.T) {
	f := newFake(t)
	tr := newTranslator(f, "k-pro")
	tr.ContextSentences = 2
	if _, err := tr.TranslateContext(context.Background(), "Hello.", "en", "en", []string{"One.", "Two.", "Three."}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Translate(context.Background(), "Olá.", "en", "pt"); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"text": []any{"Hello."}, "source_lang": "EN", "target_lang": "EN-US", "context": "Two. Three."},
		{"text": []any{"Olá."}, "source_lang": "EN", "target_lang": "PT-PT"},
	}
	if !reflect.DeepEqual(f.translates, want) {
		t.Fatalf("requests %v, want %v", f.translates, want)
	}
}

func TestGlossary(t *testing.T) {
	f := newFake(t)
	entries := map[string][]deepl.Entry{"en-es": {{"Holy Spirit", "Espíritu Santo"}, {"Pentecost Chapel", ""}}}
	t.Run("CreatedOnce", func(t *testing.T) {
		tr := newTranslator(f, "k-pro")
		tr.Glossaries = entries
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := tr.Translate(context.Background(), "The Holy Spirit came.", "en", "es"); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if _, err := tr.Translate(context.Background(), "The Holy Spirit came.", "en", "ca"); err != nil {
			t.Fatal(err) // a pair without entries: no glossary
		}
		if len(f.created) != 1 {
			t.Fatalf("%d glossaries created, want 1", len(f.created))
		}
		c := f.created[0]
		if c["source_lang"] != "en" || c["target_lang"] != "es" || c["entries_format"] != "tsv" ||
			c["entries"] != "Holy Spirit\tEspíritu Santo\nPentecost Chapel\tPentecost Chapel" || c["name"] != tr.GlossaryName("en", "es") {
			t.Fatalf("created %v", c)
		}
		for i, req := range f.translates {
			wantID := "gl-b"
			if req["target_lang"] == "CA" {
				wantID = ""
			}
			if id, _ := req["glossary_id"].(string); id != wantID {
				t.Errorf("request %d glossary_id %q, want %q", i, id, wantID)
			}
		}
	})
	t.Run("ReusedByName", func(t *testing.T) {
		tr := newTranslator(f, "k-pro") // a new worker: finds the one created above
		tr.Glossaries = entries
		if _, err := tr.Translate(context.Background(), "The Holy Spirit came.", "en", "es"); err != nil {
			t.Fatal(err)
		}
		if len(f.created) != 1 {
			t.Fatalf("%d glossaries created, want the existing one reused", len(f.created))
		}
	})
	t.Run("NewWhenEdited", func(t *testing.T) {
		tr := newTranslator(f, "k-pro")
		tr.Glossaries = map[string][]deepl.Entry{"en-es": {{"Holy Spirit", "Santo Espíritu"}}}
		if _, err := tr.Translate(context.Background(), "The Holy Spirit came.", "en", "es"); err != nil {
			t.Fatal(err)
		}
		if len(f.created) != 2 {
			t.Fatalf("%d glossaries created, want a new one for the edited entries", len(f.created))
		}
	})
}

func TestErrors(t *testing.T) {
	date := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		fail     []func(http.ResponseWriter) bool
		attempts int
		code     string
		after    time.Duration
	}{
		{"OKAfterRateLimit", []func(http.ResponseWriter) bool{status(429, "Retry-After", "0")}, 2, "", 0},
		{"ErrQuotaExceededNotRetried", []func(http.ResponseWriter) bool{status(456)}, 1, engine.ErrRefused, 0},
		{"ErrRateLimitSeconds", []func(http.ResponseWriter) bool{status(429, "Retry-After", "7"), status(429, "Retry-After", "7")}, 2, engine.ErrThrottled, 7 * time.Second},
		{"ErrRateLimitDate", []func(http.ResponseWriter) bool{status(429, "Retry-After", date.Add(90*time.Second).Format(http.TimeFormat)),
			status(429, "Retry-After", date.Add(90*time.Second).Format(http.TimeFormat))}, 2, engine.ErrThrottled, 90 * time.Second},
		{"ErrBadKey", []func(http.ResponseWriter) bool{status(403)}, 1, engine.ErrRefused, 0},
		{"ErrServer", []func(http.ResponseWriter) bool{status(503), status(503)}, 2, engine.ErrUnavailable, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.fail = tc.fail
			tr := newTranslator(f, "k-pro")
			tr.Now = func() time.Time { return date }
			got, err := tr.Translate(context.Background(), enginetest.TranslatorSentence, "en", "es")
			if len(f.hosts) != tc.attempts {
				t.Errorf("%d attempts, want %d", len(f.hosts), tc.attempts)
			}
			if tc.code == "" {
				if err != nil || got == "" {
					t.Fatalf("%q %v", got, err)
				}
				return
			}
			var ee *engine.Error
			if !errors.As(err, &ee) || ee.Code != tc.code || ee.RetryAfter != tc.after {
				t.Fatalf("err = %#v, want code %s retry after %v", err, tc.code, tc.after)
			}
		})
	}
}
