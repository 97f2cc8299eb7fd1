package worker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pentecost/pentecost/worker"
	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/enginetest"
)

// fnTranslator is a translator made of a function, for the chain's order
// and error cases where no service is involved.
type fnTranslator struct {
	name  string
	calls atomic.Int32
	fn    func(ctx context.Context, text string, previous []string) (string, error)
}

func (f *fnTranslator) Name() string { return f.name }
func (f *fnTranslator) Translate(ctx context.Context, text, from, to string) (string, error) {
	f.calls.Add(1)
	return f.fn(ctx, text, nil)
}

// fnContextTranslator also reads context.
type fnContextTranslator struct{ fnTranslator }

func (f *fnContextTranslator) TranslateContext(ctx context.Context, text, from, to string, previous []string) (string, error) {
	f.calls.Add(1)
	return f.fn(ctx, text, previous)
}

func failingTr(name, code string) *fnTranslator {
	return &fnTranslator{name: name, fn: func(context.Context, string, []string) (string, error) {
		return "", &engine.Error{Engine: name, Code: code}
	}}
}

func answeringTr(name, answer string) *fnTranslator {
	return &fnTranslator{name: name, fn: func(ctx context.Context, _ string, _ []string) (string, error) {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		return answer, nil
	}}
}

func TestChain(t *testing.T) {
	t.Run("OKFirstAnswers", func(t *testing.T) {
		a, b := answeringTr("a", "uno"), answeringTr("b", "dos")
		c := worker.NewChain(a, b)
		got, err := c.Translate(context.Background(), "one", "en", "es")
		if err != nil || got != "uno" || b.calls.Load() != 0 {
			t.Fatalf("%q %v, second called %d times", got, err, b.calls.Load())
		}
		if c.Name() != "a>b" {
			t.Errorf("name %q", c.Name())
		}
	})
	t.Run("OKFallsBackOnBadResponseAndEmpty", func(t *testing.T) {
		a, b, c := failingTr("llm", engine.ErrBadResponse), answeringTr("deepl", ""), answeringTr("apertium", "tres")
		got, err := worker.NewChain(a, b, c).Translate(context.Background(), "three", "en", "es")
		if err != nil || got != "tres" || a.calls.Load() != 1 || b.calls.Load() != 1 {
			t.Fatalf("%q %v", got, err)
		}
	})
	t.Run("ErrAllFailLastCode", func(t *testing.T) {
		_, err := worker.NewChain(failingTr("llm", engine.ErrBadResponse), failingTr("deepl", engine.ErrRefused)).
			Translate(context.Background(), "x", "en", "es")
		var ee *engine.Error
		if !errors.As(err, &ee) || ee.Engine != "deepl" || ee.Code != engine.ErrRefused {
			t.Fatalf("err = %v, want deepl's %s", err, engine.ErrRefused)
		}
	})
	t.Run("ErrCancelledStops", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		a := &fnTranslator{name: "a", fn: func(context.Context, string, []string) (string, error) {
			cancel()
			return "", context.Canceled
		}}
		b := answeringTr("b", "dos")
		_, err := worker.NewChain(a, b).Translate(ctx, "x", "en", "es")
		if !errors.Is(err, context.Canceled) || b.calls.Load() != 0 {
			t.Fatalf("err = %v, second called %d times", err, b.calls.Load())
		}
	})
	t.Run("ContextWhenAnyMemberReadsIt", func(t *testing.T) {
		var seen []string
		ctxT := &fnContextTranslator{fnTranslator{name: "llm", fn: func(_ context.Context, _ string, previous []string) (string, error) {
			seen = previous
			return "", &engine.Error{Engine: "llm", Code: engine.ErrBadResponse}
		}}}
		plain := answeringTr("apertium", "hola")
		c := worker.NewChain(ctxT, plain)
		ct, ok := c.(worker.ContextTranslator)
		if !ok {
			t.Fatal("chain with an LLM is not a ContextTranslator")
		}
		got, err := ct.TranslateContext(context.Background(), "hello", "en", "es", []string{"Before."})
		if err != nil || got != "hola" || len(seen) != 1 || seen[0] != "Before." {
			t.Fatalf("%q %v, context seen %v", got, err, seen)
		}
		if _, ok := worker.NewChain(answeringTr("a", "x"), answeringTr("b", "y")).(worker.ContextTranslator); ok {
			t.Error("chain without a context member claims to read context")
		}
	})
}

// TestChainLLMGuardFallsBack builds llm → libretranslate from the
// configuration, against a chat server whose model talks instead of
// translating: the guard refuses the answer and LibreTranslate's is used.
func TestChainLLMGuardFallsBack(t *testing.T) {
	var chatCalls atomic.Int32
	chat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chatCalls.Add(1)
		if r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"I'm sorry, but I can't help with that."},"finish_reason":"stop"}]}`)
	}))
	defer chat.Close()
	libre := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"translatedText":"Buenos días y bienvenidos a todos."}`)
	}))
	defer libre.Close()
	cfg := onlyConfig(t, "translate.en-es=llm,libretranslate\nllm.url="+chat.URL+"/v1\nllm.model=m\nlibretranslate.url="+libre.URL+"\n")
	e, err := cfg.Engines(context.Background(), envNone)
	if err != nil {
		t.Fatal(err)
	}
	tr := e.Translators[worker.Pair{From: "en", To: "es"}]
	if tr.Name() != "llm>libretranslate" {
		t.Fatalf("translator %q", tr.Name())
	}
	got, err := tr.(worker.ContextTranslator).TranslateContext(context.Background(), enginetest.TranslatorSentence, "en", "es", []string{"Before."})
	if err != nil || got != "Buenos días y bienvenidos a todos." || chatCalls.Load() != 1 {
		t.Fatalf("%q %v after %d chat calls", got, err, chatCalls.Load())
	}
	enginetest.RunTranslator(t, tr, "en", "es")
}

func envNone(string) string { return "" }

// onlyConfig parses text over the defaults with the default (offline)
// engines switched off, so a test builds only the engines it names.
func onlyConfig(t *testing.T, text string) worker.Config {
	t.Helper()
	var off strings.Builder
	for k := range worker.DefaultConfig() {
		off.WriteString(k + "=\n")
	}
	c, err := worker.ParseConfig(strings.NewReader(off.String() + text))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
