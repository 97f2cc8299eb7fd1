// Package deepl is a translator speaking the DeepL API v2
// (POST /v2/translate), with its glossaries (POST /v2/glossaries) and its
// context parameter for the sentences spoken before the text.
//
// The request and response shapes follow developers.deepl.com
// (api-reference/translate, api-reference/glossaries,
// best-practices/error-handling, read 2026-12-06); testdata holds them as
// fixtures for the tests' fake.
package deepl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pentecost/pentecost/worker/engine"
)

// The two endpoints: a key ending in ":fx" belongs to the free plan.
const (
	FreeURL = "https://api-free.deepl.com"
	ProURL  = "https://api.deepl.com"
)

// StatusQuotaExceeded is DeepL's 456: the free plan's monthly characters,
// or a Pro account's cost-control limit, are used up. Retrying does not
// help until the limit changes.
const StatusQuotaExceeded = 456

// Entry is one glossary entry: Source becomes Target (the same string
// keeps a term as it is).
type Entry struct {
	Source, Target string
}

// Translator translates with DeepL.
type Translator struct {
	// URL is the API's host without the version; empty: FreeURL or
	// ProURL by the key.
	URL    string
	APIKey string
	// Targets maps our target languages to DeepL's codes where DeepL wants
	// a variant: en → EN-US (or EN-GB), pt → PT-PT (or PT-BR).
	Targets map[string]string
	// ContextSentences is how many previous sentences go in "context".
	ContextSentences int
	// Glossaries holds the entries of each pair ("en-es"); each pair's
	// glossary is created on DeepL once, named by its content, and reused.
	Glossaries map[string][]Entry
	// Attempts, Timeout, MinBackoff and MaxBackoff are the retries of 429,
	// 5xx, network errors and attempts over Timeout.
	Attempts               int
	Timeout                time.Duration
	MinBackoff, MaxBackoff time.Duration
	Client                 *http.Client
	Now                    func() time.Time

	mu       sync.Mutex
	glossary map[string]*glossaryState // by pair
}

type glossaryState struct {
	once sync.Once
	id   string
	err  error
}

// New returns a translator with the key's endpoint.
func New(apiKey string) *Translator {
	return &Translator{APIKey: apiKey, Targets: map[string]string{"en": "EN-US", "pt": "PT-PT"}, ContextSentences: 3,
		Attempts: 2, Timeout: 8 * time.Second, MinBackoff: 250 * time.Millisecond, MaxBackoff: 2 * time.Second, Now: time.Now}
}

// Endpoint is the base URL requests go to: URL when set, else the free
// endpoint for a key ending in ":fx" and the Pro one for any other.
func (t *Translator) Endpoint() string {
	if t.URL != "" {
		return strings.TrimRight(t.URL, "/")
	}
	if strings.HasSuffix(t.APIKey, ":fx") {
		return FreeURL
	}
	return ProURL
}

// Name implements engine.Translator.
func (t *Translator) Name() string { return "deepl" }

// TargetLang is DeepL's target_lang for a language code.
func (t *Translator) TargetLang(to string) string {
	if v := t.Targets[to]; v != "" {
		return strings.ToUpper(v)
	}
	return strings.ToUpper(to)
}

// Translate implements engine.Translator.
func (t *Translator) Translate(ctx context.Context, text, from, to string) (string, error) {
	return t.TranslateContext(ctx, text, from, to, nil)
}

// translateRequest is the JSON body of POST /v2/translate.
type translateRequest struct {
	Text       []string `json:"text"`
	SourceLang string   `json:"source_lang"`
	TargetLang string   `json:"target_lang"`
	Context    string   `json:"context,omitempty"`
	GlossaryID string   `json:"glossary_id,omitempty"`
}

type translateResponse struct {
	Translations []struct {
		DetectedSourceLanguage string `json:"detected_source_language"`
		Text                   string `json:"text"`
	} `json:"translations"`
}

// TranslateContext implements engine.ContextTranslator: previous goes in
// DeepL's "context" parameter, which is not translated (nor billed).
func (t *Translator) TranslateContext(ctx context.Context, text, from, to string, previous []string) (string, error) {
	if strings.TrimSpace(text) == "" {
		return "", nil
	}
	req := translateRequest{Text: []string{text}, SourceLang: strings.ToUpper(from), TargetLang: t.TargetLang(to)}
	if n := t.ContextSentences; n > 0 && len(previous) > 0 {
		if len(previous) > n {
			previous = previous[len(previous)-n:]
		}
		req.Context = strings.Join(previous, " ")
	}
	id, err := t.glossaryID(ctx, from, to)
	if err != nil {
		return "", err
	}
	req.GlossaryID = id
	body, _ := json.Marshal(req)
	resp, err := t.call(ctx, http.MethodPost, "/v2/translate", body)
	if err != nil {
		return "", err
	}
	var out translateResponse
	if err := json.Unmarshal(resp, &out); err != nil || len(out.Translations) != 1 || strings.TrimSpace(out.Translations[0].Text) == "" {
		return "", &engine.Error{Engine: t.Name(), Code: engine.ErrBadResponse, Err: errors.New("answer without one translation")}
	}
	return out.Translations[0].Text, nil
}

// glossaryInfo is a glossary as POST and GET /v2/glossaries describe it.
type glossaryInfo struct {
	GlossaryID string `json:"glossary_id"`
	Name       string `json:"name"`
	Ready      bool   `json:"ready"`
	SourceLang string `json:"source_lang"`
	TargetLang string `json:"target_lang"`
	EntryCount int    `json:"entry_count"`
}

// GlossaryName is the name the pair's glossary has on DeepL: it changes
// with the entries, so an edited glossary file makes a new glossary.
func (t *Translator) GlossaryName(from, to string) string {
	h := sha256.New()
	for _, e := range t.Glossaries[from+"-"+to] {
		fmt.Fprintf(h, "%s\t%s\n", e.Source, e.Target)
	}
	return "pentecost " + from + "-" + to + " " + hex.EncodeToString(h.Sum(nil))[:12]
}

// glossaryID returns the id of the pair's glossary, finding it by name or
// creating it the first time; "" when the pair has no entries.
func (t *Translator) glossaryID(ctx context.Context, from, to string) (string, error) {
	pair := from + "-" + to
	if len(t.Glossaries[pair]) == 0 {
		return "", nil
	}
	t.mu.Lock()
	if t.glossary == nil {
		t.glossary = map[string]*glossaryState{}
	}
	st := t.glossary[pair]
	if st == nil {
		st = &glossaryState{}
		t.glossary[pair] = st
	}
	t.mu.Unlock()
	st.once.Do(func() { st.id, st.err = t.ensureGlossary(ctx, from, to) })
	if st.err != nil {
		// Try again on the next call rather than never: the failure may
		// have been this call's context or a passing outage.
		t.mu.Lock()
		if t.glossary[pair] == st {
			delete(t.glossary, pair)
		}
		t.mu.Unlock()
	}
	return st.id, st.err
}

func (t *Translator) ensureGlossary(ctx context.Context, from, to string) (string, error) {
	name := t.GlossaryName(from, to)
	resp, err := t.call(ctx, http.MethodGet, "/v2/glossaries", nil)
	if err != nil {
		return "", err
	}
	var list struct {
		Glossaries []glossaryInfo `json:"glossaries"`
	}
	if err := json.Unmarshal(resp, &list); err != nil {
		return "", &engine.Error{Engine: t.Name(), Code: engine.ErrBadResponse, Err: errors.New("glossary list is not JSON")}
	}
	for _, g := range list.Glossaries {
		if g.Name == name && strings.EqualFold(g.SourceLang, from) && strings.EqualFold(g.TargetLang, to) && g.GlossaryID != "" {
			return g.GlossaryID, nil
		}
	}
	var tsv strings.Builder
	for _, e := range t.Glossaries[from+"-"+to] {
		target := e.Target
		if target == "" {
			target = e.Source
		}
		fmt.Fprintf(&tsv, "%s\t%s\n", clean(e.Source), clean(target))
	}
	body, _ := json.Marshal(map[string]string{"name": name, "source_lang": from, "target_lang": to,
		"entries": strings.TrimSuffix(tsv.String(), "\n"), "entries_format": "tsv"})
	resp, err = t.call(ctx, http.MethodPost, "/v2/glossaries", body)
	if err != nil {
		return "", err
	}
	var g glossaryInfo
	if err := json.Unmarshal(resp, &g); err != nil || g.GlossaryID == "" {
		return "", &engine.Error{Engine: t.Name(), Code: engine.ErrBadResponse, Err: errors.New("glossary created without an id")}
	}
	return g.GlossaryID, nil
}

func clean(s string) string { return strings.Join(strings.Fields(s), " ") }

// call sends one API request with the retries and returns the body of the
// first success, or an *engine.Error.
func (t *Translator) call(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	client := t.Client
	if client == nil {
		client = http.DefaultClient
	}
	attempts := max(t.Attempts, 1)
	var last *engine.Error
	for i := 0; i < attempts; i++ {
		out, err := t.once(ctx, client, method, path, body)
		if err == nil {
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, &engine.Error{Engine: t.Name(), Code: engine.ContextCode(ctx), Err: ctx.Err()}
		}
		last = err
		if !engine.Retryable(err.Code) || i == attempts-1 {
			break
		}
		wait := engine.Backoff(t.MinBackoff, t.MaxBackoff, i)
		if err.RetryAfter > 0 {
			wait = min(err.RetryAfter, t.MaxBackoff)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, &engine.Error{Engine: t.Name(), Code: engine.ContextCode(ctx), Err: ctx.Err()}
		case <-timer.C:
		}
	}
	return nil, last
}

func (t *Translator) once(ctx context.Context, client *http.Client, method, path string, body []byte) ([]byte, *engine.Error) {
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.Endpoint()+path, rd)
	if err != nil {
		return nil, &engine.Error{Engine: t.Name(), Code: engine.ErrInternal, Err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "DeepL-Auth-Key "+t.APIKey)
	req.Header.Set("User-Agent", "pentecost-worker")
	resp, err := client.Do(req)
	if err != nil {
		code := engine.ErrUnavailable
		if ctx.Err() != nil {
			code = engine.ErrTimeout
		}
		return nil, &engine.Error{Engine: t.Name(), Code: code, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, &engine.Error{Engine: t.Name(), Code: engine.ErrUnavailable, Err: err}
	}
	if resp.StatusCode/100 != 2 {
		now := time.Now
		if t.Now != nil {
			now = t.Now
		}
		return nil, &engine.Error{Engine: t.Name(), Code: engine.StatusCode(resp.StatusCode),
			RetryAfter: engine.RetryAfter(resp.Header.Get("Retry-After"), now()), Err: fmt.Errorf("HTTP %d", resp.StatusCode)}
	}
	return b, nil
}

var _ engine.ContextTranslator = (*Translator)(nil)
