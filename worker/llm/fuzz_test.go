package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pentecost/pentecost/worker/engine"
)

// The fuzz targets read what a model, a chat server or a glossary file
// says; their corpora are in testdata/fuzz.

// FuzzClean: Clean either refuses an answer with one of its own errors
// (which carry no user text) or returns a part of it that is trimmed,
// not blank, within the guard's bounds, free of the markers of a model
// talking, and that Clean accepts unchanged.
func FuzzClean(f *testing.F) {
	f.Fuzz(func(t *testing.T, source, answer, from, to string) {
		got, err := Clean(source, answer, from, to)
		if err != nil {
			for _, e := range []error{errEmptyAnswer, errTooShort, errTooLong, errTalking, errEcho} {
				if err == e {
					return
				}
			}
			t.Fatalf("Clean error %v is not one of the guard's", err)
		}
		switch {
		case got == "" || got != strings.TrimSpace(got):
			t.Fatalf("Clean = %q: blank or untrimmed", got)
		case !strings.Contains(answer, got):
			t.Fatalf("Clean = %q: not part of the answer %q", got, answer)
		case strings.Count(got, "\n") > strings.Count(strings.TrimSpace(source), "\n")+1:
			t.Fatalf("Clean = %q: more lines than the source %q allows", got, source)
		}
		low, srcLow := strings.ToLower(got), strings.ToLower(source)
		for _, m := range talkMarkers {
			if strings.Contains(low, m) && !strings.Contains(srcLow, m) {
				t.Fatalf("Clean = %q: passes the marker %q", got, m)
			}
		}
		ns, na := utf8.RuneCountInString(strings.TrimSpace(source)), utf8.RuneCountInString(got)
		if ns < shortSource && na > maxShortAnswer || ns >= shortSource && (float64(na) < minRatio*float64(ns) || float64(na) > maxRatio*float64(ns)) {
			t.Fatalf("Clean = %q (%d characters) for a source of %d", got, na, ns)
		}
		if again, err := Clean(source, got, from, to); err != nil || again != got {
			t.Fatalf("Clean(%q) = %q, %v; want it unchanged", got, again, err)
		}
	})
}

// fuzzSource is the text FuzzTranslate asks to translate.
const fuzzSource = "The Lord is my shepherd; I shall not want."

// FuzzTranslate answers one chat completion request with status, a
// Retry-After header and body, and checks TranslateContext's result: a
// success is a 2xx answer and its first choice's content as Clean makes
// it; a failure is an *engine.Error with the code of the status, or
// ErrBadResponse for a 2xx answer it cannot use.
func FuzzTranslate(f *testing.F) {
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		status = 100 + (status%500+500)%500 // a status code, 100 to 599
		tr := New("http://llm.test/v1", "key", "model")
		tr.Attempts = 1
		tr.Client = &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {retryAfter}},
				Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
		})}
		got, err := tr.TranslateContext(context.Background(), fuzzSource, "en", "es", nil)
		if err != nil {
			var e *engine.Error
			switch {
			case !errors.As(err, &e) || e.Engine != "llm":
				t.Fatalf("error %v is not an engine.Error of llm", err)
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
			Choices []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(body, &out); err != nil || len(out.Choices) == 0 || out.Choices[0].FinishReason == "length" {
			t.Fatalf("translated %q from an answer without a usable choice: %s", got, body)
		}
		if want, err := Clean(fuzzSource, out.Choices[0].Message.Content, "en", "es"); err != nil || got != want {
			t.Fatalf("translated %q; the first choice cleans to %q, %v", got, want, err)
		}
	})
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzParseGlossary: a glossary file parses or fails; a parsed one has
// valid pairs and trimmed, non-empty source terms, reads back the same
// when written as TSV, and each of its terms is found in its own text.
func FuzzParseGlossary(f *testing.F) {
	f.Fuzz(func(t *testing.T, file []byte) {
		g, err := ParseGlossary(bytes.NewReader(file))
		if err != nil {
			return
		}
		var tsv strings.Builder
		for pair, terms := range g {
			from, to, ok := strings.Cut(pair, "-")
			if !ok || !validLang(from, true) || !validLang(to, true) || from == "*" && to != "*" {
				t.Fatalf("pair %q", pair)
			}
			for _, term := range terms {
				if term.Source == "" || term.Source != strings.TrimSpace(term.Source) || term.Target != strings.TrimSpace(term.Target) {
					t.Fatalf("term %q", term)
				}
				tsv.WriteString(pair + "\t" + term.Source + "\t" + term.Target + "\n")
				if from == "*" {
					from, to = "en", "es"
				} else if to == "*" {
					to = "es"
				}
				if !hasTerm(g.Matching(term.Source, from, to), term.Source) {
					t.Fatalf("term %q of %s not found in its own text", term.Source, pair)
				}
			}
		}
		again, err := ParseGlossary(strings.NewReader(tsv.String()))
		if err != nil {
			t.Fatalf("written back as\n%s\nit does not parse: %v", tsv.String(), err)
		}
		if !reflect.DeepEqual(again, g) {
			t.Fatalf("written back as\n%s\nit reads %q, want %q", tsv.String(), again, g)
		}
	})
}

// hasTerm reports whether terms hold source, ignoring case as Terms does.
func hasTerm(terms []Term, source string) bool {
	for _, t := range terms {
		if strings.ToLower(t.Source) == strings.ToLower(source) {
			return true
		}
	}
	return false
}
