package worker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pentecost/pentecost/worker/deepgram"
	"github.com/pentecost/pentecost/worker/deepl"
	"github.com/pentecost/pentecost/worker/llm"
	"github.com/pentecost/pentecost/worker/vosk"
)

// Config is the engine configuration: KEY=VALUE settings, read from a file
// of such lines over the defaults. Keys:
//
//	recognize.LANG=pocketsphinx | openai | transcribe[:CODE] (a source language)
//	              | vosk[:WS-URL] | deepgram[:CODE] | transcribe-streaming[:CODE] (streaming)
//	translate.FROM-TO=ENGINE[,ENGINE…] with ENGINE one of apertium[:MODE] |
//	              libretranslate | aws | llm[:MODEL] | deepl[:TARGET-CODE]; several
//	              are a fallback chain tried in order (translate.en-es=llm,deepl,apertium:eng-spa)
//	synthesize.LANG=espeak[:VOICE] | openai[:VOICE] | polly[:VOICE]
//	tier.NAME.KEY=VALUE: KEY (an engine choice or an engine's setting) for the
//	              sessions of quality tier NAME (e.g. tier.premium.translate.en-es=llm,deepl)
//	pocketsphinx.corpus | .lm | .dict | .hmm = FILE
//	offline.timeout_seconds (one call to pocketsphinx, apertium or espeak-ng)
//	openai.url, openai.api_key: the OpenAI-compatible API for every role, or per role
//	openai.stt.url, openai.stt.api_key, openai.stt.path (/inference for whisper.cpp's server),
//	openai.tts.url, openai.tts.api_key, openai.tts.format (pcm, streamed; or wav),
//	openai.tts.pcm_rate (24000; a Piper voice's rate behind a Piper server), openai.chat.url, openai.chat.api_key, openai.chat.model
//	openai.transcription_model, openai.speech_model
//	llm.url, llm.api_key, llm.model (default: the openai.chat.* ones), llm.context_sentences
//	glossary.file (PAIR, TERM, TRANSLATION lines, TSV or CSV; for llm and deepl)
//	deepl.api_key, deepl.url (default by the key: api-free.deepl.com for ":fx" keys)
//	vosk.url, deepgram.url, deepgram.api_key (or $DEEPGRAM_API_KEY), deepgram.model,
//	transcribe.streaming_endpoint
//	libretranslate.url, libretranslate.api_key
//	aws.region, aws.endpoint, polly.engine
//	transcribe.bucket, transcribe.prefix, transcribe.poll_ms, transcribe.timeout_seconds
//	vad.threshold, vad.hangover_ms, vad.max_utterance_seconds, cache.size
//
// An empty value switches an engine off (e.g. "translate.en-gl=").
type Config map[string]string

// DefaultConfig uses the offline reference engines: English recognised by
// pocketsphinx, translated by apertium into Spanish, Catalan and Galician,
// spoken by espeak-ng.
func DefaultConfig() Config {
	return Config{
		"recognize.en":    "pocketsphinx",
		"translate.en-es": "apertium:eng-spa",
		"translate.en-ca": "apertium:eng-cat",
		"translate.en-gl": "apertium:en-gl",
		"synthesize.en":   "espeak:en-us",
		"synthesize.es":   "espeak:es",
		"synthesize.ca":   "espeak:ca",
		"synthesize.gl":   "espeak:gl",
	}
}

var plainKeys = map[string]bool{
	"pocketsphinx.corpus": true, "pocketsphinx.lm": true, "pocketsphinx.dict": true, "pocketsphinx.hmm": true,
	"offline.timeout_seconds": true, "openai.url": true, "openai.api_key": true, "openai.transcription_model": true, "openai.speech_model": true,
	"libretranslate.url": true, "libretranslate.api_key": true,
	"aws.region": true, "aws.endpoint": true, "polly.engine": true,
	"transcribe.bucket": true, "transcribe.prefix": true, "transcribe.poll_ms": true, "transcribe.timeout_seconds": true,
	"vad.threshold": true, "vad.hangover_ms": true, "vad.max_utterance_seconds": true, "cache.size": true,
	"openai.stt.url": true, "openai.stt.api_key": true, "openai.stt.path": true, "openai.tts.url": true, "openai.tts.api_key": true, "openai.tts.format": true, "openai.tts.pcm_rate": true,
	"openai.chat.url": true, "openai.chat.api_key": true, "openai.chat.model": true,
	"llm.url": true, "llm.api_key": true, "llm.model": true, "llm.context_sentences": true, "glossary.file": true,
	"deepl.api_key": true, "deepl.url": true,
	"vosk.url": true, "deepgram.url": true, "deepgram.api_key": true, "deepgram.model": true, "transcribe.streaming_endpoint": true,
}

// workerWide are the keys a tier cannot set: they shape the whole worker
// (the voice detector, the cache) or an engine shared by every tier.
func workerWide(k string) bool {
	for _, p := range []string{"vad.", "cache.", "offline.", "pocketsphinx.", "aws.", "tier."} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// ParseConfig reads KEY=VALUE lines (# starts a comment) over the
// defaults. Unknown keys are an error, with the line number.
func ParseConfig(r io.Reader) (Config, error) {
	c := DefaultConfig()
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !c.validKey(k) {
			return nil, fmt.Errorf("engine configuration line %d: unknown setting %q", n, k)
		}
		c[k] = v
	}
	return c, sc.Err()
}

func (c Config) validKey(k string) bool {
	if plainKeys[k] {
		return true
	}
	kind, rest, _ := strings.Cut(k, ".")
	switch kind {
	case "tier":
		name, key, ok := strings.Cut(rest, ".")
		return ok && validTier(name) && !workerWide(key) && c.validKey(key)
	case "recognize", "synthesize":
		return validLang(rest)
	case "translate":
		from, to, ok := strings.Cut(rest, "-")
		return ok && validLang(from) && validLang(to)
	}
	return false
}

// validTier accepts a quality tier's name: lower-case letters, up to 20.
func validTier(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, r := range s {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

func validLang(s string) bool {
	if len(s) < 2 || len(s) > 3 {
		return false
	}
	for _, r := range s {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

func (c Config) num(k string, def float64) (float64, error) {
	v := c[k]
	if v == "" {
		return def, nil
	}
	// NaN, infinities and absurd sizes would overflow the durations and
	// counts these become (a NaN threshold meant no speech, ever).
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxSetting {
		return 0, fmt.Errorf("engine configuration: %s must be a number from 0 to %g", k, float64(maxSetting))
	}
	return f, nil
}

// maxSetting bounds every number in an engine configuration: far above
// any sensible value, far below what overflows a Duration or an int.
const maxSetting = 1e9

// Segmenter returns the voice-activity settings.
func (c Config) Segmenter() (Segmenter, error) {
	s := *NewSegmenter()
	th, err := c.num("vad.threshold", s.Threshold)
	if err != nil {
		return s, err
	}
	hang, err := c.num("vad.hangover_ms", float64(s.Hangover/time.Millisecond))
	if err != nil {
		return s, err
	}
	maxU, err := c.num("vad.max_utterance_seconds", s.MaxUtterance.Seconds())
	if err != nil {
		return s, err
	}
	if maxU < 2 {
		return s, fmt.Errorf("engine configuration: vad.max_utterance_seconds must be at least 2")
	}
	s.Threshold, s.Hangover, s.MaxUtterance = th, time.Duration(hang)*time.Millisecond, time.Duration(maxU*float64(time.Second))
	return s, nil
}

// CacheSize returns the size of the translation cache.
func (c Config) CacheSize() (int, error) {
	n, err := c.num("cache.size", 1024)
	return int(n), err
}

// Engines builds and checks the configured engines of the standard tier
// (the keys without tier.). getenv supplies OPENAI_API_KEY,
// LIBRETRANSLATE_API_KEY, DEEPL_API_KEY and DEEPGRAM_API_KEY when the file
// has no key.
func (c Config) Engines(ctx context.Context, getenv func(string) string) (*Engines, error) {
	e, _, err := c.BuildEngines(ctx, getenv)
	return e, err
}

// Tiers lists the quality tiers the configuration names in tier.NAME.
// keys, sorted.
func (c Config) Tiers() []string {
	seen := map[string]bool{}
	for k := range c {
		if rest, ok := strings.CutPrefix(k, "tier."); ok {
			name, _, _ := strings.Cut(rest, ".")
			seen[name] = true
		}
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Tier returns the configuration of a quality tier: the base keys with
// the tier's tier.NAME.KEY settings over them, and no tier keys.
func (c Config) Tier(name string) Config {
	out := Config{}
	for k, v := range c {
		if !strings.HasPrefix(k, "tier.") {
			out[k] = v
		}
	}
	prefix := "tier." + name + "."
	for k, v := range c {
		if key, ok := strings.CutPrefix(k, prefix); ok {
			out[key] = v
		}
	}
	return out
}

// BuildEngines builds the engines of the base configuration and of each
// quality tier (Tiers), for Worker.Engines and Worker.Tiers. Engines that
// hold resources (pocketsphinx's generated model) are shared by every
// tier; the others are built per tier, so that a tier's voice or model
// does not change another's.
func (c Config) BuildEngines(ctx context.Context, getenv func(string) string) (*Engines, map[string]*Engines, error) {
	b := &builder{ctx: ctx, getenv: getenv, base: c}
	if v := c["offline.timeout_seconds"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, nil, fmt.Errorf("engine configuration: offline.timeout_seconds must be a positive whole number")
		}
		b.offlineTimeout = time.Duration(n) * time.Second
	} else {
		b.offlineTimeout = DefaultProcessTimeout
	}
	base, err := b.build(c.Tier(""), "")
	if err != nil {
		return nil, nil, err
	}
	tiers := map[string]*Engines{}
	for _, name := range c.Tiers() {
		e, err := b.build(c.Tier(name), "tier."+name+".")
		if err != nil {
			base.Close()
			for _, t := range tiers {
				t.Close()
			}
			return nil, nil, err
		}
		tiers[name] = e
	}
	return base, tiers, nil
}

// builder holds what every tier's engines share.
type builder struct {
	ctx            context.Context
	getenv         func(string) string
	base           Config
	offlineTimeout time.Duration

	sphinx   *Pocketsphinx
	awsC     awsConfig // shared by the tiers; see config_aws.go
	glossary llm.Glossary
	glossErr error
	glossOK  bool
}

func (b *builder) pocketsphinx() (*Pocketsphinx, error) {
	if b.sphinx == nil {
		s := NewPocketsphinx()
		s.Timeout = b.offlineTimeout
		for key, f := range map[string]*string{"pocketsphinx.hmm": &s.HMM, "pocketsphinx.lm": &s.LM,
			"pocketsphinx.dict": &s.Dict, "pocketsphinx.corpus": &s.Corpus} {
			if b.base[key] != "" {
				*f = b.base[key]
			}
		}
		if err := s.Open(); err != nil {
			return nil, err
		}
		b.sphinx = s
	}
	return b.sphinx, nil
}

// glossaryFile reads glossary.file once.
func (b *builder) glossaryFile(c Config) (llm.Glossary, error) {
	path := c["glossary.file"]
	if path == "" {
		return nil, nil
	}
	if path != b.base["glossary.file"] {
		return llm.LoadGlossary(path) // a tier's own file
	}
	if !b.glossOK {
		b.glossary, b.glossErr = llm.LoadGlossary(path)
		b.glossOK = true
	}
	return b.glossary, b.glossErr
}

// first returns the first non-empty value.
func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// build builds one tier's engines from c, its whole configuration; prefix
// is how the tier's keys are written, for messages.
func (b *builder) build(c Config, prefix string) (*Engines, error) {
	e := &Engines{Recognizers: map[string]Recognizer{}, StreamingRecognizers: map[string]StreamingRecognizer{},
		Translators: map[Pair]Translator{}, Synthesizers: map[string]Synthesizer{}}
	var (
		apert  *Apertium
		espeak *Espeak
		oai    *OpenAI
		libre  *LibreTranslate
		vk     *vosk.Recognizer
		dl     *deepl.Translator
		dg     *deepgram.Recognizer
	)
	dgLangs := map[string]string{}       // Deepgram's language codes, filled before the streams start
	llms := map[string]*llm.Translator{} // by model
	openai := func(role string) (*OpenAI, error) {
		if oai == nil {
			key := first(c["openai.api_key"], b.getenv("OPENAI_API_KEY"))
			oai = NewOpenAI(c["openai.url"], key)
			oai.STT = Endpoint{URL: c["openai.stt.url"], APIKey: c["openai.stt.api_key"], Path: c["openai.stt.path"]}
			oai.TTS = Endpoint{URL: c["openai.tts.url"], APIKey: c["openai.tts.api_key"]}
			if v := c["openai.transcription_model"]; v != "" {
				oai.TranscriptionModel = v
			}
			if v := c["openai.speech_model"]; v != "" {
				oai.SpeechModel = v
			}
			switch v := c["openai.tts.format"]; v {
			case "", "pcm", "wav":
				if v != "" {
					oai.StreamFormat = v
				}
			default:
				return nil, fmt.Errorf("engine configuration: openai.tts.format must be pcm or wav")
			}
			if v := c["openai.tts.pcm_rate"]; v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 8000 || n > 48000 {
					return nil, fmt.Errorf("engine configuration: openai.tts.pcm_rate must be a sample rate from 8000 to 48000")
				}
				oai.PCMRate = n
			}
		}
		if c["openai.url"] == "" && c["openai."+role+".url"] == "" {
			return nil, fmt.Errorf("engine configuration: openai.url or openai.%s.url is required for the openai engine", role)
		}
		return oai, nil
	}
	aws := &awsEngines{b: b, c: c}
	translator := func(k string, p Pair, engineName, arg string) (Translator, error) {
		switch engineName {
		case "apertium":
			if apert == nil {
				apert = NewApertium()
				apert.Timeout = b.offlineTimeout
				if err := apert.Open(); err != nil {
					return nil, err
				}
			}
			if arg != "" {
				apert.Modes[p] = arg
			}
			if apert.Modes[p] == "" {
				return nil, fmt.Errorf("engine configuration: %s: give the apertium mode, e.g. apertium:eng-spa", k)
			}
			return apert, nil
		case "libretranslate":
			if libre == nil {
				if c["libretranslate.url"] == "" {
					return nil, fmt.Errorf("engine configuration: libretranslate.url is required for the libretranslate engine")
				}
				libre = NewLibreTranslate(c["libretranslate.url"], first(c["libretranslate.api_key"], b.getenv("LIBRETRANSLATE_API_KEY")))
			}
			return libre, nil
		case "aws":
			return aws.translator(k)
		case "llm":
			url := first(c["llm.url"], c["openai.chat.url"], c["openai.url"])
			if url == "" {
				return nil, fmt.Errorf("engine configuration: %s: llm.url (or openai.chat.url, openai.url) is required for the llm engine", k)
			}
			model := first(arg, c["llm.model"], c["openai.chat.model"])
			if model == "" {
				return nil, fmt.Errorf("engine configuration: %s: llm.model (or openai.chat.model, or llm:MODEL) is required for the llm engine", k)
			}
			if t := llms[model]; t != nil {
				return t, nil
			}
			t := llm.New(url, first(c["llm.api_key"], c["openai.chat.api_key"], c["openai.api_key"], b.getenv("OPENAI_API_KEY")), model)
			if v := c["llm.context_sentences"]; v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 || n > 20 {
					return nil, fmt.Errorf("engine configuration: llm.context_sentences must be a whole number from 0 to 20")
				}
				t.ContextSentences = n
			}
			g, err := b.glossaryFile(c)
			if err != nil {
				return nil, fmt.Errorf("engine configuration: glossary.file: %w", err)
			}
			t.Glossary = g
			llms[model] = t
			return t, nil
		case "deepl":
			if dl == nil {
				key := first(c["deepl.api_key"], b.getenv("DEEPL_API_KEY"))
				if key == "" {
					return nil, fmt.Errorf("engine configuration: %s: deepl.api_key (or $DEEPL_API_KEY) is required for the deepl engine", k)
				}
				dl = deepl.New(key)
				dl.URL = c["deepl.url"]
				if v := c["llm.context_sentences"]; v != "" {
					if n, err := strconv.Atoi(v); err == nil && n >= 0 {
						dl.ContextSentences = n
					}
				}
				g, err := b.glossaryFile(c)
				if err != nil {
					return nil, fmt.Errorf("engine configuration: glossary.file: %w", err)
				}
				dl.Glossaries = deeplGlossaries(g, c)
			}
			if arg != "" {
				dl.Targets[p.To] = arg
			}
			return dl, nil
		}
		return nil, fmt.Errorf("engine configuration: %s: unknown engine %q", k, engineName)
	}

	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c[k]
		kind, target, _ := strings.Cut(k, ".")
		engineName, arg, _ := strings.Cut(v, ":")
		if v == "" || plainKeys[k] {
			continue
		}
		bad := fmt.Errorf("engine configuration: %s%s: unknown engine %q", prefix, k, engineName)
		switch kind {
		case "recognize":
			switch engineName {
			case "pocketsphinx":
				if target != "en" {
					return nil, fmt.Errorf("engine configuration: %s%s: pocketsphinx is configured for English only", prefix, k)
				}
				s, err := b.pocketsphinx()
				if err != nil {
					return nil, err
				}
				e.Recognizers[target] = s
			case "openai":
				o, err := openai("stt")
				if err != nil {
					return nil, err
				}
				e.Recognizers[target] = o
			case "transcribe":
				r, err := aws.transcribe(prefix+k, target, arg)
				if err != nil {
					return nil, err
				}
				e.Recognizers[target] = r
			case "transcribe-streaming":
				r, err := aws.transcribeStreaming(prefix+k, target, arg)
				if err != nil {
					return nil, err
				}
				e.StreamingRecognizers[target] = r
			case "vosk":
				if arg == "" && c["vosk.url"] == "" {
					return nil, fmt.Errorf("engine configuration: %s%s: vosk.url (or vosk:ws://HOST:PORT) is required for the vosk engine", prefix, k)
				}
				if vk == nil {
					urls := map[string]string{}
					for _, kk := range keys {
						if l, ok := strings.CutPrefix(kk, "recognize."); ok {
							if name, u, _ := strings.Cut(c[kk], ":"); name == "vosk" && u != "" {
								urls[l] = u
							}
						}
					}
					r, err := vosk.New(vosk.Config{URL: c["vosk.url"], URLs: urls})
					if err != nil {
						return nil, fmt.Errorf("engine configuration: %s%s: %w", prefix, k, err)
					}
					vk = r
				}
				e.StreamingRecognizers[target] = vk
			case "deepgram":
				r, err := b.deepgram(c, prefix+k, target, arg, dg, dgLangs)
				if err != nil {
					return nil, err
				}
				dg = r
				e.StreamingRecognizers[target] = r
			default:
				return nil, bad
			}
		case "translate":
			from, to, _ := strings.Cut(target, "-")
			p := Pair{from, to}
			var members []Translator
			for _, m := range strings.Split(v, ",") {
				name, marg, _ := strings.Cut(strings.TrimSpace(m), ":")
				if name == "" {
					return nil, fmt.Errorf("engine configuration: %s%s: empty engine in the chain %q", prefix, k, v)
				}
				t, err := translator(prefix+k, p, name, marg)
				if err != nil {
					return nil, err
				}
				members = append(members, t)
			}
			e.Translators[p] = NewChain(members...)
		case "synthesize":
			switch engineName {
			case "espeak":
				if espeak == nil {
					espeak = NewEspeak()
					espeak.Timeout = b.offlineTimeout
					if err := espeak.Open(); err != nil {
						return nil, err
					}
				}
				if arg != "" {
					espeak.Voices[target] = arg
				}
				e.Synthesizers[target] = espeak
			case "openai":
				o, err := openai("tts")
				if err != nil {
					return nil, err
				}
				if arg != "" {
					o.Voices[target] = arg
				}
				e.Synthesizers[target] = o
			case "polly":
				p, err := aws.polly(prefix+k, target, arg)
				if err != nil {
					return nil, err
				}
				e.Synthesizers[target] = p
			default:
				return nil, bad
			}
		}
	}
	return e, nil
}

// deeplGlossaries turns the glossary file's terms into DeepL glossary
// entries for every pair configured with deepl.
func deeplGlossaries(g llm.Glossary, c Config) map[string][]deepl.Entry {
	if len(g) == 0 {
		return nil
	}
	out := map[string][]deepl.Entry{}
	for k, v := range c {
		pair, ok := strings.CutPrefix(k, "translate.")
		if !ok || !strings.Contains(v, "deepl") {
			continue
		}
		from, to, _ := strings.Cut(pair, "-")
		for _, t := range g.Terms(from, to) {
			out[pair] = append(out[pair], deepl.Entry{Source: t.Source, Target: first(t.Target, t.Source)})
		}
	}
	return out
}

func cloneWith(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

// LoadConfig reads the engine configuration file at path ("" : defaults).
func LoadConfig(path string) (Config, error) {
	if path == "" {
		return DefaultConfig(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("engine configuration: %w", err)
	}
	defer f.Close()
	return ParseConfig(f)
}

// deepgram builds the Deepgram live recogniser once per tier; arg (in
// recognize.LANG=deepgram:CODE) is Deepgram's language code for LANG.
func (b *builder) deepgram(c Config, key, lang, arg string, prev *deepgram.Recognizer, langs map[string]string) (*deepgram.Recognizer, error) {
	if arg != "" {
		langs[lang] = arg
	}
	if prev != nil {
		return prev, nil
	}
	r, err := deepgram.New(deepgram.Config{URL: c["deepgram.url"], APIKey: first(c["deepgram.api_key"], b.getenv("DEEPGRAM_API_KEY")),
		Model: c["deepgram.model"], Languages: langs})
	if err != nil {
		return nil, fmt.Errorf("engine configuration: %s: %w", key, err)
	}
	return r, nil
}
