package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pentecost/pentecost/worker"
)

func TestConfigNewKeys(t *testing.T) {
	t.Run("OKEveryKey", func(t *testing.T) {
		text := `openai.url=http://a/v1
openai.api_key=k
openai.stt.url=http://stt/v1
openai.stt.api_key=k1
openai.stt.path=/inference
openai.tts.url=http://tts/v1
openai.tts.api_key=k2
openai.chat.url=http://chat/v1
openai.chat.api_key=k3
openai.chat.model=gpt-4o-mini
llm.url=http://localhost:11434/v1
llm.api_key=
llm.model=qwen2.5:7b-instruct
llm.context_sentences=3
glossary.file=/etc/pentecost/glossary.tsv
deepl.api_key=abc:fx
deepl.url=https://api-free.deepl.com
vosk.url=ws://127.0.0.1:2700
deepgram.url=wss://api.deepgram.com/v1/listen
deepgram.api_key=dg
deepgram.model=nova-3
transcribe.streaming_endpoint=https://transcribestreaming.eu-west-1.amazonaws.com
translate.en-es=llm,deepl,apertium:eng-spa
recognize.es=vosk
tier.premium.translate.en-es=llm:gpt-4o,deepl
tier.premium.synthesize.es=openai:nova
tier.premium.llm.model=gpt-4o
tier.standard.recognize.en=transcribe-streaming:en-GB
`
		c, err := worker.ParseConfig(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		if c["openai.stt.path"] != "/inference" || c["tier.premium.translate.en-es"] != "llm:gpt-4o,deepl" {
			t.Fatalf("parsed %v", c)
		}
		if got := c.Tiers(); len(got) != 2 || got[0] != "premium" || got[1] != "standard" {
			t.Fatalf("tiers %v", got)
		}
		p := c.Tier("premium")
		if p["translate.en-es"] != "llm:gpt-4o,deepl" || p["llm.model"] != "gpt-4o" || p["translate.en-ca"] != "apertium:eng-cat" || p["tier.premium.llm.model"] != "" {
			t.Fatalf("premium %v", p)
		}
	})
	for _, tc := range []struct{ name, text, line string }{
		{"ErrUnknownKey", "llm.url=x\nllm.temperature=1\n", "line 2"},
		{"ErrTierWorkerWide", "# c\n\ntier.premium.vad.threshold=500\n", "line 3"},
		{"ErrTierName", "tier.Premium.translate.en-es=llm\n", "line 1"},
		{"ErrTierUnknownKey", "tier.premium.bogus=1\n", "line 1"},
		{"ErrTierNested", "tier.premium.tier.gold.translate.en-es=llm\n", "line 1"},
		{"ErrOldOpenAIRoleKey", "openai.stt.model=x\n", "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := worker.ParseConfig(strings.NewReader(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.line) {
				t.Fatalf("err = %v, want one at %s", err, tc.line)
			}
		})
	}
}

func TestConfigEngines(t *testing.T) {
	dir := t.TempDir()
	glossary := filepath.Join(dir, "glossary.tsv")
	if err := os.WriteFile(glossary, []byte("en-es\tHoly Spirit\tEspíritu Santo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("OKTiers", func(t *testing.T) {
		c := onlyConfig(t, `translate.en-es=libretranslate
libretranslate.url=http://127.0.0.1:1
synthesize.es=openai:alloy
recognize.en=openai
openai.url=http://127.0.0.1:1/v1
llm.url=http://127.0.0.1:1/v1
llm.model=small
glossary.file=`+glossary+`
deepl.api_key=k:fx
tier.premium.translate.en-es=llm,deepl:ES
tier.premium.synthesize.es=openai:nova
tier.premium.llm.model=big
`)
		base, tiers, err := c.BuildEngines(context.Background(), envNone)
		if err != nil {
			t.Fatal(err)
		}
		defer base.Close()
		p := worker.Pair{From: "en", To: "es"}
		if base.Translators[p].Name() != "libretranslate" {
			t.Errorf("base translator %q", base.Translators[p].Name())
		}
		prem := tiers["premium"]
		if prem == nil || len(tiers) != 1 {
			t.Fatalf("tiers %v", tiers)
		}
		if prem.Translators[p].Name() != "llm>deepl" {
			t.Errorf("premium translator %q", prem.Translators[p].Name())
		}
		if _, ok := prem.Translators[p].(worker.ContextTranslator); !ok {
			t.Error("premium chain does not read context")
		}
		if base.Synthesizers["es"].(*worker.OpenAI).Voices["es"] != "alloy" || prem.Synthesizers["es"].(*worker.OpenAI).Voices["es"] != "nova" {
			t.Error("a tier's voice changed another tier's")
		}
		if prem.Recognizers["en"] == nil || !prem.CanProduce("en", "es") {
			t.Error("premium lacks the base recogniser")
		}
	})
	t.Run("OKStreamingRecognizers", func(t *testing.T) {
		awsEnv(t)
		c := onlyConfig(t, "recognize.en=vosk\nrecognize.es=vosk:ws://127.0.0.1:2701\nvosk.url=ws://127.0.0.1:2700\n"+
			"recognize.ca=transcribe-streaming\nrecognize.gl=transcribe-streaming:gl-ES\naws.region=eu-west-1\n"+
			"transcribe.streaming_endpoint=http://127.0.0.1:1\n")
		e, err := c.Engines(context.Background(), envNone)
		if err != nil {
			t.Fatal(err)
		}
		for lang, name := range map[string]string{"en": "vosk", "es": "vosk", "ca": "transcribe-streaming", "gl": "transcribe-streaming"} {
			r := e.StreamingRecognizers[lang]
			if r == nil || !strings.Contains(r.Name(), strings.Split(name, "-")[0]) {
				t.Errorf("%s: %v", lang, r)
			}
		}
	})
	for _, tc := range []struct{ name, text, want string }{
		{"ErrLLMWithoutModel", "translate.en-es=llm\nllm.url=http://x/v1\n", "llm.model"},
		{"ErrLLMWithoutURL", "translate.en-es=llm\nllm.model=m\n", "llm.url"},
		{"ErrDeepLWithoutKey", "translate.en-es=deepl\n", "deepl.api_key"},
		{"ErrGlossaryMissing", "translate.en-es=llm\nllm.url=http://x/v1\nllm.model=m\nglossary.file=" + filepath.Join(dir, "none.tsv") + "\n", "glossary.file"},
		{"ErrContextSentences", "translate.en-es=llm\nllm.url=http://x/v1\nllm.model=m\nllm.context_sentences=many\n", "llm.context_sentences"},
		{"ErrEmptyChainMember", "translate.en-es=llm,,deepl\nllm.url=http://x/v1\nllm.model=m\n", "empty engine"},
		{"ErrUnknownChainMember", "translate.en-es=llm,babel\nllm.url=http://x/v1\nllm.model=m\n", `"babel"`},
		{"ErrVoskWithoutURL", "recognize.en=vosk\n", "vosk.url"},
		{"ErrTierEngine", "tier.premium.translate.en-es=babel\n", "tier.premium.translate.en-es"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := onlyConfig(t, tc.text).BuildEngines(context.Background(), envNone)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
	t.Run("OKDeepgram", func(t *testing.T) {
		e, err := onlyConfig(t, "recognize.en=deepgram\nrecognize.es=deepgram:es-419\ndeepgram.url=ws://127.0.0.1:1/v1/listen\ndeepgram.model=nova-3\n").
			Engines(context.Background(), envNone)
		if err != nil {
			t.Fatal(err)
		}
		if r := e.StreamingRecognizers["en"]; r == nil || r.Name() != "deepgram" || e.StreamingRecognizers["es"] != r {
			t.Fatalf("recognisers %v", e.StreamingRecognizers)
		}
		if _, err := onlyConfig(t, "recognize.en=deepgram\n").Engines(context.Background(), envNone); err == nil ||
			!strings.Contains(err.Error(), "deepgram.api_key") {
			t.Fatalf("hosted Deepgram without a key: err = %v", err)
		}
	})
}
