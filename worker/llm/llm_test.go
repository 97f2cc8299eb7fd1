package llm_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/enginetest"
	"github.com/pentecost/pentecost/worker/llm"
)

// Fake is an OpenAI-compatible chat completions server. It checks each
// request against testdata/chat_request.json's fields and answers in
// testdata/chat_response.json's shape: the translation of the <text> of
// the user message from Translations, or Answer when set.
type Fake struct {
	t   *testing.T
	URL string
	// Key is the bearer token required; "" requires none.
	Key string
	// Answer, when set, is said whatever the text (a model misbehaving).
	Answer func(text string) string
	// Status, when set, is the status of the next len(Status) answers.
	Status []func(w http.ResponseWriter)

	mu       sync.Mutex
	Requests []map[string]any
}

// Translations is what the fake model says for each text.
var Translations = map[string]string{
	enginetest.TranslatorSentence:                     "Buenos días y bienvenidos a todos.",
	"The Holy Spirit came upon the Pentecost Chapel.": "El Espíritu Santo descendió sobre la Pentecost Chapel.",
	"He said yes.": "Dijo que sí.",
}

var textRE = regexp.MustCompile(`(?s)<text>\n(.*)\n</text>`)

func NewFake(t *testing.T) *Fake {
	f := &Fake{t: t}
	reqFields := fields(t, "chat_request.json")
	resp := fixture(t, "chat_response.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
			return
		}
		if f.Key != "" && r.Header.Get("Authorization") != "Bearer "+f.Key {
			http.Error(w, `{"error":{"message":"Incorrect API key provided"}}`, http.StatusUnauthorized)
			return
		}
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, `{"error":{"message":"bad json"}}`, http.StatusBadRequest)
			return
		}
		for k := range m {
			if !reqFields[k] {
				t.Errorf("request field %q is not in the documented shape", k)
			}
		}
		f.mu.Lock()
		f.Requests = append(f.Requests, m)
		var st func(http.ResponseWriter)
		if len(f.Status) > 0 {
			st, f.Status = f.Status[0], f.Status[1:]
		}
		f.mu.Unlock()
		if st != nil {
			st(w)
			return
		}
		msgs, _ := m["messages"].([]any)
		if len(msgs) != 2 {
			http.Error(w, `{"error":{"message":"messages"}}`, http.StatusBadRequest)
			return
		}
		user := msgs[1].(map[string]any)["content"].(string)
		sm := textRE.FindStringSubmatch(user)
		if sm == nil {
			http.Error(w, `{"error":{"message":"no text"}}`, http.StatusBadRequest)
			return
		}
		answer := Translations[sm[1]]
		if answer == "" {
			answer = "[es] " + sm[1]
		}
		if f.Answer != nil {
			answer = f.Answer(sm[1])
		}
		out := clone(resp)
		choice := out["choices"].([]any)[0].(map[string]any)
		choice["message"].(map[string]any)["content"] = answer
		out["model"] = m["model"]
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL + "/v1"
	return f
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

func fields(t *testing.T, name string) map[string]bool {
	out := map[string]bool{}
	for k := range fixture(t, name) {
		out[k] = true
	}
	return out
}

func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

func newTranslator(f *Fake) *llm.Translator {
	tr := llm.New(f.URL, f.Key, "qwen2.5:7b-instruct")
	tr.MinBackoff, tr.MaxBackoff = time.Millisecond, 5*time.Millisecond
	return tr
}

func TestSuite(t *testing.T) {
	f := NewFake(t)
	f.Key = "sk-test"
	enginetest.RunTranslator(t, newTranslator(f), "en", "es")
}

func TestRequest(t *testing.T) {
	f := NewFake(t)
	g, err := llm.ParseGlossary(strings.NewReader("# terms\nen-es\tHoly Spirit\tEspíritu Santo\nen-*,Pentecost Chapel\nen-es\tcommunion\tcomunión\nen-ca\tHoly Spirit\tEsperit Sant\n"))
	if err != nil {
		t.Fatal(err)
	}
	tr := newTranslator(f)
	tr.Glossary, tr.ContextSentences = g, 2
	got, err := tr.TranslateContext(context.Background(), "The Holy Spirit came upon the Pentecost Chapel.", "en", "es",
		[]string{"Too old.", "They were all together.", "Suddenly there was a sound."})
	if err != nil || got != "El Espíritu Santo descendió sobre la Pentecost Chapel." {
		t.Fatalf("%q %v", got, err)
	}
	if len(f.Requests) != 1 {
		t.Fatalf("%d requests", len(f.Requests))
	}
	req := f.Requests[0]
	if temp, ok := req["temperature"]; !ok || temp != 0.0 {
		t.Errorf("temperature %v (sent: %v), want 0 sent", temp, ok)
	}
	if req["model"] != "qwen2.5:7b-instruct" || req["stream"] != false {
		t.Errorf("model %v stream %v", req["model"], req["stream"])
	}
	msgs := req["messages"].([]any)
	sys, user := msgs[0].(map[string]any), msgs[1].(map[string]any)
	if sys["role"] != "system" || user["role"] != "user" {
		t.Fatalf("roles %v %v", sys["role"], user["role"])
	}
	for _, want := range []string{"English (en)", "Spanish (es)", "nothing else", "register"} {
		if !strings.Contains(sys["content"].(string), want) {
			t.Errorf("system prompt lacks %q:\n%s", want, sys["content"])
		}
	}
	u := user["content"].(string)
	for _, want := range []string{"<previous>\nThey were all together.\nSuddenly there was a sound.\n</previous>",
		"Holy Spirit = Espíritu Santo", "Pentecost Chapel = Pentecost Chapel (keep as is)",
		"<text>\nThe Holy Spirit came upon the Pentecost Chapel.\n</text>"} {
		if !strings.Contains(u, want) {
			t.Errorf("user message lacks %q:\n%s", want, u)
		}
	}
	for _, not := range []string{"Too old.", "communion", "Esperit Sant"} {
		if strings.Contains(u, not) {
			t.Errorf("user message holds %q (beyond the context, or a term not in the text / of another pair):\n%s", not, u)
		}
	}
}

func TestGuard(t *testing.T) {
	src := enginetest.TranslatorSentence
	for _, tc := range []struct {
		name, answer, want string
		to                 string
	}{
		{"OK", "Buenos días y bienvenidos a todos.", "Buenos días y bienvenidos a todos.", "es"},
		{"OKQuotesStripped", "\"Buenos días y bienvenidos a todos.\"", "Buenos días y bienvenidos a todos.", "es"},
		{"OKCurlyQuotesStripped", "«Buenos días y bienvenidos a todos.»", "Buenos días y bienvenidos a todos.", "es"},
		{"OKLabelStripped", "Translation: Buenos días y bienvenidos a todos.", "Buenos días y bienvenidos a todos.", "es"},
		{"OKLabelAndQuotesStripped", "Traducción: \"Buenos días y bienvenidos a todos.\"\n", "Buenos días y bienvenidos a todos.", "es"},
		{"ErrSorry", "I'm sorry, but I can't help with that.", "", "es"},
		{"ErrAsAnAI", "Como modelo de lenguaje, no puedo.", "", "es"},
		{"ErrAsAnAIEnglish", "As an AI language model, I think this greeting is friendly.", "", "es"},
		{"ErrHereIs", "Here is the translation: Buenos días y bienvenidos a todos.", "", "es"},
		{"ErrEcho", src, "", "es"},
		{"ErrTooShort", "Hola.", "", "es"},
		{"ErrTooLong", strings.Repeat("Buenos días y bienvenidos a todos. ", 4), "", "es"},
		{"ErrNotes", "Buenos días y bienvenidos a todos.\n\nNote: \"welcome\" could also be\n\"bienvenida\".", "", "es"},
		{"ErrEmpty", "  \"\" ", "", "es"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := llm.Clean(src, tc.answer, "en", tc.to)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("accepted %q", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%q %v, want %q", got, err, tc.want)
			}
		})
	}
	t.Run("OKIntoEnglishMaySaySorry", func(t *testing.T) {
		got, err := llm.Clean("Lo siento, llegué tarde esta mañana.", "I'm sorry, I arrived late this morning.", "es", "en")
		if err != nil || got != "I'm sorry, I arrived late this morning." {
			t.Fatalf("%q %v", got, err)
		}
	})
	t.Run("OKSameLanguageEcho", func(t *testing.T) {
		if _, err := llm.Clean(src, src, "en", "en"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("OKShortSource", func(t *testing.T) {
		if got, err := llm.Clean("Amen.", "Amén.", "en", "es"); err != nil || got != "Amén." {
			t.Fatalf("%q %v", got, err)
		}
	})
	t.Run("ErrBadResponseFromServer", func(t *testing.T) {
		f := NewFake(t)
		f.Answer = func(string) string { return "I'm sorry, but I can't help with that." }
		_, err := newTranslator(f).Translate(context.Background(), src, "en", "es")
		var ee *engine.Error
		if !errors.As(err, &ee) || ee.Code != engine.ErrBadResponse {
			t.Fatalf("err = %v, want %s", err, engine.ErrBadResponse)
		}
	})
}

func TestErrors(t *testing.T) {
	date := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	st := func(code int, header ...string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			w.WriteHeader(code)
			w.Write([]byte(`{"error":{"message":"later"}}`))
		}
	}
	for _, tc := range []struct {
		name     string
		status   []func(http.ResponseWriter)
		attempts int
		code     string
		after    time.Duration
	}{
		{"OKAfterRateLimit", []func(http.ResponseWriter){st(429, "Retry-After", "0")}, 2, "", 0},
		{"ErrRateLimitSeconds", []func(http.ResponseWriter){st(429, "Retry-After", "12"), st(429, "Retry-After", "12")}, 2, engine.ErrThrottled, 12 * time.Second},
		{"ErrRateLimitDate", []func(http.ResponseWriter){st(429, "Retry-After", date.Add(time.Minute).Format(http.TimeFormat)),
			st(429, "Retry-After", date.Add(time.Minute).Format(http.TimeFormat))}, 2, engine.ErrThrottled, time.Minute},
		{"ErrUnauthorizedNotRetried", []func(http.ResponseWriter){st(401)}, 1, engine.ErrRefused, 0},
		{"ErrModelNotFound", []func(http.ResponseWriter){st(404)}, 1, engine.ErrUnsupported, 0},
		{"ErrServer", []func(http.ResponseWriter){st(502), st(500)}, 2, engine.ErrUnavailable, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake(t)
			f.Status = tc.status
			tr := newTranslator(f)
			tr.Now = func() time.Time { return date }
			got, err := tr.Translate(context.Background(), enginetest.TranslatorSentence, "en", "es")
			if len(f.Requests) != tc.attempts {
				t.Errorf("%d attempts, want %d", len(f.Requests), tc.attempts)
			}
			if tc.code == "" {
				if err != nil || got == "" {
					t.Fatalf("%q %v", got, err)
				}
				return
			}
			var ee *engine.Error
			if !errors.As(err, &ee) || ee.Code != tc.code || ee.RetryAfter != tc.after {
				t.Fatalf("err = %#v, want %s after %v", err, tc.code, tc.after)
			}
		})
	}
	t.Run("ErrTimeoutCutsAHungCall", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer srv.Close()
		defer close(release)
		tr := llm.New(srv.URL, "", "m")
		tr.Attempts, tr.Timeout = 1, 50*time.Millisecond
		_, err := tr.Translate(context.Background(), enginetest.TranslatorSentence, "en", "es")
		var ee *engine.Error
		if !errors.As(err, &ee) || ee.Code != engine.ErrTimeout {
			t.Fatalf("err = %v, want %s", err, engine.ErrTimeout)
		}
	})
}

func TestParseGlossary(t *testing.T) {
	g, err := llm.ParseGlossary(strings.NewReader("en-es\tHoly Spirit\tEspíritu Santo\n*-*,\"Smith, John\"\nen-ca,Lord's Supper,Sant Sopar\n"))
	if err != nil {
		t.Fatal(err)
	}
	terms := g.Terms("en", "ca")
	if len(terms) != 2 || terms[0] != (llm.Term{"Lord's Supper", "Sant Sopar"}) || terms[1] != (llm.Term{"Smith, John", ""}) {
		t.Fatalf("terms %v", terms)
	}
	if m := g.Matching("the spirit of holy spiritual things", "en", "es"); len(m) != 0 {
		t.Fatalf("matched %v in a text without the term", m)
	}
	if m := g.Matching("The holy spirit, today.", "en", "es"); len(m) != 1 {
		t.Fatalf("matched %v", m)
	}
	for _, bad := range []string{"en\tx\ty\n", "en-es\t\ty\n", "*-es,x\n", "en-es,a,b,c\n"} {
		if _, err := llm.ParseGlossary(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
