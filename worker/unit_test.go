package worker_test

import (
	"bytes"
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker"
)

func sine(freq float64, n, rate int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(10000 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
	}
	return s
}

func TestResample(t *testing.T) {
	t.Run("OKKeepsPassband", func(t *testing.T) {
		out := worker.Resample(sine(1000, 22050, 22050), 22050, 16000)
		if len(out) != 16000 {
			t.Fatalf("%d samples, want 16000", len(out))
		}
		// Compare with the ideal 16 kHz tone, away from the edges.
		want := sine(1000, 16000, 16000)
		var diff float64
		for i := 100; i < 15900; i++ {
			d := float64(out[i]) - float64(want[i])
			diff += d * d
		}
		if rms := math.Sqrt(diff / 15800); rms > 100 {
			t.Fatalf("error RMS %.0f against the ideal tone (amplitude 10000)", rms)
		}
	})
	t.Run("OKRemovesAliases", func(t *testing.T) {
		// 10 kHz cannot exist at 16 kHz: it must vanish, not fold to 6 kHz.
		out := worker.Resample(sine(10000, 22050, 22050), 22050, 16000)
		if rms := worker.RMS(out[100 : len(out)-100]); rms > 200 {
			t.Fatalf("RMS %.0f left of a 10 kHz tone (input RMS 7071)", rms)
		}
	})
	t.Run("OKUpsamples", func(t *testing.T) {
		if out := worker.Resample(sine(440, 16000, 16000), 16000, 24000); len(out) != 24000 {
			t.Fatalf("%d samples", len(out))
		}
	})
}

func TestWAV(t *testing.T) {
	in := sine(440, 1000, 16000)
	out, rate, err := worker.DecodeWAV(worker.EncodeWAV(in, 16000))
	if err != nil || rate != 16000 || len(out) != len(in) || out[10] != in[10] {
		t.Fatalf("round trip: %d samples at %d: %v", len(out), rate, err)
	}
	for _, bad := range [][]byte{nil, []byte("RIFF0000WAVE"), []byte("not a wav file at all.....")} {
		if _, _, err := worker.DecodeWAV(bad); err == nil {
			t.Errorf("DecodeWAV(%q) accepted", bad)
		}
	}
}

// segments cuts pcm with s and returns the utterances.
func segments(s *worker.Segmenter, pcm []int16) []worker.Utterance {
	var out []worker.Utterance
	emit := func(u worker.Utterance) { out = append(out, u) }
	for i := 0; i < len(pcm); i += 333 { // chunks that do not align with frames
		s.Write(pcm[i:min(i+333, len(pcm))], emit)
	}
	s.Flush(emit)
	return out
}

func silence(d time.Duration) []int16 { return make([]int16, int(d.Seconds()*16000)) }

func TestSegmenter(t *testing.T) {
	word := func(d time.Duration) []int16 { return sine(300, int(d.Seconds()*16000), 16000) }
	cat := func(parts ...[]int16) []int16 {
		var out []int16
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	t.Run("OKSentencesApart", func(t *testing.T) {
		pcm := cat(silence(time.Second), word(time.Second), silence(800*time.Millisecond), word(time.Second), silence(time.Second))
		u := segments(worker.NewSegmenter(), pcm)
		if len(u) != 2 {
			t.Fatalf("%d utterances, want 2", len(u))
		}
		// Pre-roll + speech + a little trailing silence.
		if d := len(u[0].PCM); d < 16000 || d > 16000+16000*4/10 {
			t.Fatalf("utterance of %d samples", d)
		}
	})
	t.Run("OKHangoverKeepsWordsTogether", func(t *testing.T) {
		pcm := cat(word(500*time.Millisecond), silence(250*time.Millisecond), word(500*time.Millisecond), silence(time.Second))
		if u := segments(worker.NewSegmenter(), pcm); len(u) != 1 {
			t.Fatalf("%d utterances, want 1: a 250 ms pause is inside the hangover", len(u))
		}
	})
	t.Run("OKMaxUtterance", func(t *testing.T) {
		s := worker.NewSegmenter()
		s.MaxUtterance = 3 * time.Second
		var pcm []int16
		for range 8 { // 8 s of speech with 100 ms dips
			pcm = cat(pcm, word(900*time.Millisecond), silence(100*time.Millisecond))
		}
		u := segments(s, pcm)
		var total int
		for _, x := range u {
			if len(x.PCM) > 3*16000 {
				t.Fatalf("utterance of %d samples beyond the maximum", len(x.PCM))
			}
			total += len(x.PCM)
		}
		if len(u) < 3 || total < 7*16000 {
			t.Fatalf("%d utterances, %d samples: speech lost", len(u), total)
		}
	})
	t.Run("OKClickDropped", func(t *testing.T) {
		if u := segments(worker.NewSegmenter(), cat(silence(time.Second), word(60*time.Millisecond), silence(time.Second))); len(u) != 0 {
			t.Fatalf("%d utterances from a 60 ms click", len(u))
		}
	})
	t.Run("OKSilence", func(t *testing.T) {
		if u := segments(worker.NewSegmenter(), silence(3*time.Second)); len(u) != 0 {
			t.Fatalf("%d utterances from silence", len(u))
		}
	})
}

func TestCache(t *testing.T) {
	c := worker.NewCache(2)
	p := worker.Pair{From: "en", To: "es"}
	c.Put(p, "a", "A")
	c.Put(p, "b", "B")
	c.Get(p, "a") // a is now the most recent
	c.Put(p, "c", "C")
	if _, ok := c.Get(p, "b"); ok {
		t.Error("b survived, though least recently used")
	}
	if v, ok := c.Get(p, "a"); !ok || v != "A" {
		t.Error("a evicted")
	}
	if _, ok := c.Get(worker.Pair{From: "en", To: "ca"}, "a"); ok {
		t.Error("a translation served for another pair")
	}
	if c.Len() != 2 {
		t.Errorf("Len %d", c.Len())
	}
}

func TestConfig(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		c, err := worker.ParseConfig(strings.NewReader("# comment\ntranslate.en-gl=\nsynthesize.es=espeak:es+f3\nvad.hangover_ms=300\n"))
		if err != nil {
			t.Fatal(err)
		}
		if c["translate.en-gl"] != "" || c["translate.en-es"] != "apertium:eng-spa" || c["synthesize.es"] != "espeak:es+f3" {
			t.Fatalf("%v", c)
		}
		vad, err := c.Segmenter()
		if err != nil || vad.Hangover != 300*time.Millisecond {
			t.Fatalf("%+v %v", vad, err)
		}
		e, err := c.Engines(context.Background(), func(string) string { return "" })
		requirePackages(t, err)
		defer e.Close()
		if !e.CanProduce("en", "es") || e.CanProduce("en", "gl") || e.CanProduce("en", "fr") {
			t.Fatal("switched-off or unconfigured pair produced")
		}
		if a := e.Translators[worker.Pair{From: "en", To: "es"}].(*worker.Apertium); a.Timeout != worker.DefaultProcessTimeout {
			t.Fatalf("apertium timeout %v, want the default %v", a.Timeout, worker.DefaultProcessTimeout)
		}
	})
	t.Run("OKOfflineTimeout", func(t *testing.T) {
		c, err := worker.ParseConfig(strings.NewReader("offline.timeout_seconds=7\n"))
		if err != nil {
			t.Fatal(err)
		}
		e, err := c.Engines(context.Background(), func(string) string { return "" })
		requirePackages(t, err)
		defer e.Close()
		sphinx := e.Recognizers["en"].(*worker.Pocketsphinx)
		apert := e.Translators[worker.Pair{From: "en", To: "es"}].(*worker.Apertium)
		espeak := e.Synthesizers["es"].(*worker.Espeak)
		if sphinx.Timeout != 7*time.Second || apert.Timeout != 7*time.Second || espeak.Timeout != 7*time.Second {
			t.Fatalf("timeouts %v %v %v, want 7s", sphinx.Timeout, apert.Timeout, espeak.Timeout)
		}
	})
	for _, tc := range []struct{ name, text string }{
		{"ErrUnknownKey", "voice=loud\n"},
		{"ErrBadLanguage", "translate.english-es=apertium\n"},
		{"ErrNoEquals", "recognize.en\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := worker.ParseConfig(strings.NewReader(tc.text)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	for _, tc := range []struct{ name, text string }{
		{"ErrUnknownEngine", "translate.en-es=babelfish\n"},
		{"ErrOpenAIWithoutURL", "recognize.en=openai\n"},
		{"ErrLibreTranslateWithoutURL", "translate.en-es=libretranslate\n"},
		{"ErrBadNumber", "vad.threshold=loud\n"},
		{"ErrBadOfflineTimeout", "offline.timeout_seconds=0\n"},
		{"ErrTranscribeWithoutBucket", "recognize.en=transcribe\naws.region=eu-west-1\n"},
		{"ErrTranscribeBadTimeout", "recognize.en=transcribe\naws.region=eu-west-1\ntranscribe.bucket=b\ntranscribe.timeout_seconds=soon\n"},
		{"ErrTranscribeNoLanguageCode", "recognize.en=\nrecognize.xx=transcribe\naws.region=eu-west-1\ntranscribe.bucket=b\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			awsEnv(t)
			c, err := worker.ParseConfig(strings.NewReader(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			_, err1 := c.Segmenter()
			e, err2 := c.Engines(context.Background(), func(string) string { return "" })
			if err2 == nil {
				e.Close()
			}
			if err1 == nil && err2 == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestConfigTranscribe builds the batch Transcribe recogniser from the
// configuration, with a language code given and one from the defaults.
func TestConfigTranscribe(t *testing.T) {
	awsEnv(t)
	c, err := worker.ParseConfig(strings.NewReader("recognize.en=transcribe:en-GB\nrecognize.es=transcribe\naws.region=eu-west-1\n" +
		"transcribe.bucket=talks\ntranscribe.prefix=p/\ntranscribe.poll_ms=250\ntranscribe.timeout_seconds=20\n" +
		"translate.en-es=\ntranslate.en-ca=\ntranslate.en-gl=\nsynthesize.en=\nsynthesize.es=\nsynthesize.ca=\nsynthesize.gl=\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.Engines(context.Background(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	a, ok := e.Recognizers["en"].(*worker.AWSTranscribe)
	if !ok || e.Recognizers["es"] != e.Recognizers["en"] {
		t.Fatalf("recognizers = %v", e.Recognizers)
	}
	if a.Bucket != "talks" || a.Prefix != "p/" || a.PollInterval != 250*time.Millisecond || a.Timeout != 20*time.Second ||
		a.LanguageCodes["en"] != "en-GB" || a.LanguageCodes["es"] != "es-ES" {
		t.Fatalf("transcribe = %+v", a)
	}
	if worker.DefaultTranscribeLanguages["en"] != "en-US" {
		t.Fatal("configuring en-GB changed the defaults")
	}
}

func TestWriteARPA(t *testing.T) {
	var out bytes.Buffer
	known := func(w string) bool { return w != "zzyzx" }
	vocab, err := worker.WriteARPA(&out, strings.NewReader("Let us pray.\nLet us sing, zzyzx!\n"), known)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(vocab, " ")
	if got != "</s> <s> let pray sing us" {
		t.Fatalf("vocabulary %q", got)
	}
	for _, want := range []string{"ngram 1=6", "ngram 2=6", "let us", "us pray", "\\end\\"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("model lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := worker.WriteARPA(&out, strings.NewReader("zzyzx\n"), known); err == nil {
		t.Error("a corpus of unknown words accepted")
	}
}

// TestPocketsphinxCorpusModelReused: the model built from a corpus is named
// by its content, so a worker started again (after a crash, which runs no
// clean-up) reuses the files instead of leaving another pair behind.
func TestPocketsphinxCorpusModelReused(t *testing.T) {
	dir := t.TempDir()
	open := func() *worker.Pocketsphinx {
		p := worker.NewPocketsphinx()
		p.Corpus, p.Dir = "testdata/sermon-corpus.txt", dir
		requirePackages(t, p.Open())
		return p
	}
	first, second := open(), open()
	if first.LM != second.LM || first.Dict != second.Dict {
		t.Fatalf("second start built other files: %s %s, then %s %s", first.LM, first.Dict, second.LM, second.Dict)
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("%d files in the model directory, want the model and its dictionary", len(files))
	}
	lm, err := os.ReadFile(first.LM)
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(lm)), "\\end\\") {
		t.Fatalf("model file incomplete (%v)", err)
	}
}
