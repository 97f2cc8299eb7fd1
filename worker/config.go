package worker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Config is the engine configuration: KEY=VALUE settings, read from a file
// of such lines over the defaults. Keys:
//
//	recognize.LANG=pocketsphinx | openai | transcribe[:CODE] (a source language)
//	translate.FROM-TO=apertium[:MODE] | libretranslate | aws
//	synthesize.LANG=espeak[:VOICE] | openai[:VOICE] | polly[:VOICE]
//	pocketsphinx.corpus | .lm | .dict | .hmm = FILE
//	offline.timeout_seconds (one call to pocketsphinx, apertium or espeak-ng)
//	openai.url, openai.api_key, openai.transcription_model, openai.speech_model
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
	case "recognize", "synthesize":
		return validLang(rest)
	case "translate":
		from, to, ok := strings.Cut(rest, "-")
		return ok && validLang(from) && validLang(to)
	}
	return false
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
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("engine configuration: %s must be a non-negative number", k)
	}
	return f, nil
}

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

// Engines builds and checks the configured engines. getenv supplies
// OPENAI_API_KEY and LIBRETRANSLATE_API_KEY when the file has no key.
func (c Config) Engines(ctx context.Context, getenv func(string) string) (*Engines, error) {
	e := &Engines{Recognizers: map[string]Recognizer{}, Translators: map[Pair]Translator{}, Synthesizers: map[string]Synthesizer{}}
	var (
		sphinx *Pocketsphinx
		apert  *Apertium
		espeak *Espeak
		oai    *OpenAI
		libre  *LibreTranslate
		awsT   *AWSTranslate
		awsP   *AWSPolly
		awsTr  *AWSTranscribe
		awsC   aws.Config
	)
	openai := func() (*OpenAI, error) {
		if oai == nil {
			if c["openai.url"] == "" {
				return nil, fmt.Errorf("engine configuration: openai.url is required for the openai engine")
			}
			key := c["openai.api_key"]
			if key == "" {
				key = getenv("OPENAI_API_KEY")
			}
			oai = NewOpenAI(c["openai.url"], key)
			if v := c["openai.transcription_model"]; v != "" {
				oai.TranscriptionModel = v
			}
			if v := c["openai.speech_model"]; v != "" {
				oai.SpeechModel = v
			}
		}
		return oai, nil
	}
	awsCfg := func() error {
		if awsT != nil {
			return nil
		}
		cfg, err := LoadAWSConfig(ctx, AWSOptions{Region: c["aws.region"], Endpoint: c["aws.endpoint"]})
		if err != nil {
			return err
		}
		awsC, awsT, awsP = cfg, NewAWSTranslate(cfg), NewAWSPolly(cfg)
		if v := c["polly.engine"]; v != "" {
			awsP.Engine = v
		}
		return nil
	}
	offlineTimeout := DefaultProcessTimeout
	if v := c["offline.timeout_seconds"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("engine configuration: offline.timeout_seconds must be a positive whole number")
		}
		offlineTimeout = time.Duration(n) * time.Second
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c[k]
		kind, target, _ := strings.Cut(k, ".")
		engine, arg, _ := strings.Cut(v, ":")
		if v == "" || plainKeys[k] {
			continue
		}
		bad := fmt.Errorf("engine configuration: %s: unknown engine %q", k, engine)
		switch kind {
		case "recognize":
			switch engine {
			case "pocketsphinx":
				if target != "en" {
					return nil, fmt.Errorf("engine configuration: %s: pocketsphinx is configured for English only", k)
				}
				if sphinx == nil {
					sphinx = NewPocketsphinx()
					sphinx.Timeout = offlineTimeout
					for key, f := range map[string]*string{"pocketsphinx.hmm": &sphinx.HMM, "pocketsphinx.lm": &sphinx.LM,
						"pocketsphinx.dict": &sphinx.Dict, "pocketsphinx.corpus": &sphinx.Corpus} {
						if c[key] != "" {
							*f = c[key]
						}
					}
					if err := sphinx.Open(); err != nil {
						return nil, err
					}
				}
				e.Recognizers[target] = sphinx
			case "openai":
				o, err := openai()
				if err != nil {
					return nil, err
				}
				e.Recognizers[target] = o
			case "transcribe":
				if awsTr == nil {
					if c["transcribe.bucket"] == "" {
						return nil, fmt.Errorf("engine configuration: transcribe.bucket is required for the transcribe engine")
					}
					if err := awsCfg(); err != nil {
						return nil, err
					}
					awsTr = NewAWSTranscribe(awsC, c["transcribe.bucket"])
					if v, ok := c["transcribe.prefix"]; ok {
						awsTr.Prefix = v
					}
					for key, d := range map[string]*time.Duration{"transcribe.poll_ms": &awsTr.PollInterval, "transcribe.timeout_seconds": &awsTr.Timeout} {
						if c[key] == "" {
							continue
						}
						n, err := strconv.Atoi(c[key])
						if err != nil || n <= 0 {
							return nil, fmt.Errorf("engine configuration: %s must be a positive whole number", key)
						}
						*d = time.Duration(n) * time.Millisecond
						if key == "transcribe.timeout_seconds" {
							*d = time.Duration(n) * time.Second
						}
					}
				}
				if arg != "" {
					awsTr.LanguageCodes = cloneWith(awsTr.LanguageCodes, target, arg)
				}
				if awsTr.LanguageCodes[target] == "" {
					return nil, fmt.Errorf("engine configuration: %s: give the Transcribe language code, e.g. transcribe:en-GB", k)
				}
				e.Recognizers[target] = awsTr
			default:
				return nil, bad
			}
		case "translate":
			from, to, _ := strings.Cut(target, "-")
			p := Pair{from, to}
			switch engine {
			case "apertium":
				if apert == nil {
					apert = NewApertium()
					apert.Timeout = offlineTimeout
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
				e.Translators[p] = apert
			case "libretranslate":
				if libre == nil {
					if c["libretranslate.url"] == "" {
						return nil, fmt.Errorf("engine configuration: libretranslate.url is required for the libretranslate engine")
					}
					key := c["libretranslate.api_key"]
					if key == "" {
						key = getenv("LIBRETRANSLATE_API_KEY")
					}
					libre = NewLibreTranslate(c["libretranslate.url"], key)
				}
				e.Translators[p] = libre
			case "aws":
				if err := awsCfg(); err != nil {
					return nil, err
				}
				e.Translators[p] = awsT
			default:
				return nil, bad
			}
		case "synthesize":
			switch engine {
			case "espeak":
				if espeak == nil {
					espeak = NewEspeak()
					espeak.Timeout = offlineTimeout
					if err := espeak.Open(); err != nil {
						return nil, err
					}
				}
				if arg != "" {
					espeak.Voices[target] = arg
				}
				e.Synthesizers[target] = espeak
			case "openai":
				o, err := openai()
				if err != nil {
					return nil, err
				}
				if arg != "" {
					o.Voices[target] = arg
				}
				e.Synthesizers[target] = o
			case "polly":
				if err := awsCfg(); err != nil {
					return nil, err
				}
				if arg != "" {
					awsP.Voices = cloneWith(awsP.Voices, target, arg)
				}
				e.Synthesizers[target] = awsP
			default:
				return nil, bad
			}
		}
	}
	return e, nil
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
