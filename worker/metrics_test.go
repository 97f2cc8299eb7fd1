package worker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// series is one scraped series: a name and labels, and its value (a
// histogram's count).
type series map[string]float64

// scrape reads the worker's metrics as Prometheus would, over HTTP, and
// returns the series named pentecost_worker_*, keyed by name{labels}.
func scrape(t testing.TB, url string) series {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := series{}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "pentecost_worker_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(labels)
			key := name + "{" + strings.Join(labels, ",") + "}"
			out[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return out
}

// TestMetricsOutliveSessions: the worker's series are by language, never by
// session. Scraped after a session ends they are all still there with what
// they counted; the next session's work adds to them; a language's series
// exist at 0 from when the worker starts it (so that its first error is an
// increase Prometheus can see); and no label can grow without bound.
func TestMetricsOutliveSessions(t *testing.T) {
	engines, _ := fastEngines(t) // Spanish works, Catalan's translator fails
	e := newEnv(t)
	_, reg := e.startWorker(engines)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	url := srv.URL + "/metrics"

	const (
		spokenES  = "pentecost_worker_segments_spoken_total{language=es}"
		failedCA  = "pentecost_worker_engine_errors_total{engine=libretranslate,language=ca,stage=translate}"
		synthCA   = "pentecost_worker_engine_errors_total{engine=openai,language=ca,stage=synthesize}"
		sessions  = "pentecost_worker_sessions{}"
		languages = "pentecost_worker_languages{}"
		// Languages sent as PCM: the listeners here take PCM.
		pcmLanguages = "pentecost_worker_pcm_languages{}"
	)
	// talk runs one session with Spanish and Catalan listeners through n
	// utterances, ends it, and returns the series scraped before the end
	// and after the worker let the session go.
	var ids []string
	talk := func(n int, spoken, failed float64) (before, after series) {
		t.Helper()
		id := e.createSession()
		ids = append(ids, id)
		spk := e.speaker(id)
		es, ca := e.listen(id, "es"), e.listen(id, "ca")
		poll(t, 5*time.Second, "Spanish and Catalan to become available", func() bool { return es.isAvailable() && ca.isAvailable() })
		poll(t, 5*time.Second, "the languages' series", func() bool {
			s := scrape(t, url)
			_, ok := s[synthCA]
			return ok && s[languages] == 2
		})
		stream(t, spk, bursts(n))
		poll(t, 10*time.Second, "the utterances spoken in Spanish and failed in Catalan", func() bool {
			before = scrape(t, url)
			return before[spokenES] == spoken && before[failedCA] == failed
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := spk.End(ctx); err != nil {
			t.Fatal(err)
		}
		poll(t, 10*time.Second, "the worker to let the ended session go", func() bool {
			after = scrape(t, url)
			return after[sessions] == 0 && after[languages] == 0 && after[pcmLanguages] == 0
		})
		return before, after
	}

	// Before any session: the gauges and the cache's counter, nothing by language.
	if s := scrape(t, url); len(s) != 4 || s[sessions] != 0 || s[pcmLanguages] != 0 || s["pentecost_worker_translation_cache_hits_total{}"] != 0 {
		t.Fatalf("before any session: %v", s)
	}

	before, after := talk(2, 2, 2)
	if after[synthCA] != 0 {
		t.Errorf("%s = %v: Catalan was never translated, so never synthesised", synthCA, after[synthCA])
	}
	for k, v := range before {
		if k == sessions || k == languages || k == pcmLanguages {
			continue
		}
		got, ok := after[k]
		switch {
		case !ok:
			t.Errorf("%s vanished when the session ended", k)
		case got < v:
			t.Errorf("%s went from %v to %v when the session ended", k, v, got)
		}
	}
	for _, k := range []string{spokenES, failedCA} {
		if after[k] != before[k] {
			t.Errorf("%s = %v after the session ended, %v before", k, after[k], before[k])
		}
	}

	// The second session's utterance adds to the first's counts.
	_, after2 := talk(1, 3, 3)
	for k := range after {
		if _, ok := after2[k]; !ok {
			t.Errorf("%s vanished after a second session", k)
		}
	}

	// Labels are few and bounded: languages, stages, engines, what was
	// dropped, codecs; never a session or connection.
	allowed := []string{"language", "stage", "engine", "what", "codec"}
	for k := range after2 {
		labels := strings.TrimSuffix(k[strings.Index(k, "{")+1:], "}")
		if labels == "" {
			continue
		}
		for _, l := range strings.Split(labels, ",") {
			name, value, _ := strings.Cut(l, "=")
			if !slices.Contains(allowed, name) {
				t.Errorf("%s: label %q", k, name)
			}
			if slices.Contains(ids, value) {
				t.Errorf("%s: labelled with a session", k)
			}
		}
	}
}
