package worker

import (
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the worker's Prometheus series, by language (and stage and
// engine where they tell something), never by session: a worker serves many
// sessions over its life, so series per session would grow without bound,
// and deleting them when a session ends would lose what happened in it
// before Prometheus scraped it. Their number is bounded by the languages
// and engines configured.
type metrics struct {
	utterances     *prometheus.CounterVec   // language: source sentences recognised
	segmentsSpoken *prometheus.CounterVec   // language: translated segments spoken
	stage          *prometheus.HistogramVec // stage, engine, language
	delay          *prometheus.HistogramVec // language
	stale          *prometheus.CounterVec   // language, what (synthesis, audio)
	errors         *prometheus.CounterVec   // stage, engine, language
	dropped        *prometheus.CounterVec   // stage, language
	cacheHits      prometheus.Counter
	segments       *prometheus.CounterVec // language
	audio          *prometheus.CounterVec // language
	audioBytes     *prometheus.CounterVec // language, codec
	langs          prometheus.Gauge
	pcmLangs       prometheus.Gauge
	sessions       prometheus.Gauge
}

func newMetrics(r prometheus.Registerer) *metrics {
	buckets := []float64{.05, .1, .25, .5, 1, 2, 3, 5, 8, 13, 20}
	m := &metrics{
		utterances: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_utterances_total",
			Help: "Final transcripts (sentences or utterances) recognised, by source language."},
			[]string{"language"}),
		segmentsSpoken: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_segments_spoken_total",
			Help: "Translated segments whose speech was published, by language."},
			[]string{"language"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_stale_total",
			Help: "Work dropped because a language fell further behind the speaker than its budget, by language and what was dropped (synthesis: a segment captioned but not spoken; audio: the rest of a segment's speech)."},
			[]string{"language", "what"}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pentecost_worker_stage_seconds",
			Help: "Time an engine took for one utterance, failed or not, by stage (recognize, translate, synthesize), engine and language (the source language for recognize).", Buckets: buckets},
			[]string{"stage", "engine", "language"}),
		delay: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pentecost_worker_delay_seconds",
			Help: "From the end of a segment's speech reaching the worker to its first translated audio leaving the worker (0 when it left before), by language.", Buckets: buckets},
			[]string{"language"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_engine_errors_total",
			Help: "Segments skipped for a language (or not spoken, for synthesis) because an engine failed or missed the deadline, by stage, engine and language (the source language for recognize)."},
			[]string{"stage", "engine", "language"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_dropped_total",
			Help: "Work dropped because a queue was full, by stage and language: recognize, source audio (source language); translate, recognised segments (target language)."},
			[]string{"stage", "language"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Name: "pentecost_worker_translation_cache_hits_total",
			Help: "Translations answered by the cache of repeated phrases."}),
		audio: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_audio_seconds_total",
			Help: "Translated audio published, in seconds, by language."}, []string{"language"}),
		audioBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_audio_bytes_total",
			Help: "Bytes of translated audio published, by language and codec (pcm, opus): each codec's share of what the worker sends."}, []string{"language", "codec"}),
		segments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_segments_total",
			Help: "Utterances cut from source audio by voice-activity detection (per-utterance recognisers), by source language."}, []string{"language"}),
		langs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pentecost_worker_languages",
			Help: "Languages this worker currently produces, over all sessions."}),
		pcmLangs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pentecost_worker_pcm_languages",
			Help: "Languages, over all sessions, whose speech this worker publishes as PCM: those with listeners of PCM, and every one where it cannot encode Opus."}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pentecost_worker_sessions",
			Help: "Sessions this worker currently handles."}),
	}
	if r != nil {
		r.MustRegister(m.utterances, m.segmentsSpoken, m.stale, m.stage, m.delay, m.errors, m.dropped, m.cacheHits, m.audio, m.audioBytes, m.segments, m.langs, m.pcmLangs, m.sessions)
	}
	return m
}

func (m *metrics) observe(stage, engine, lang string, start time.Time) {
	m.stage.WithLabelValues(stage, engine, lang).Observe(time.Since(start).Seconds())
}

// start creates, at zero, the series of a language a worker begins to
// produce from source, with the engines that produce it. A counter that
// first appears at 1 shows Prometheus no increase, so without this the
// first error of a language would raise no alert; and dashboards show 0
// rather than no data.
func (m *metrics) start(source, lang, recognizer, translator, synthesizer string) {
	m.utterances.WithLabelValues(source)
	m.segments.WithLabelValues(source)
	m.dropped.WithLabelValues("recognize", source)
	m.dropped.WithLabelValues("translate", lang)
	m.segmentsSpoken.WithLabelValues(lang)
	m.audio.WithLabelValues(lang)
	for _, codec := range []string{client.CodecPCM, client.CodecOpus} {
		m.audioBytes.WithLabelValues(lang, codec)
	}
	m.delay.WithLabelValues(lang)
	for _, what := range []string{"synthesis", "audio"} {
		m.stale.WithLabelValues(lang, what)
	}
	for _, s := range []struct{ stage, engine, lang string }{
		{"recognize", recognizer, source}, {"translate", translator, lang}, {"synthesize", synthesizer, lang},
	} {
		m.stage.WithLabelValues(s.stage, s.engine, s.lang)
		m.errors.WithLabelValues(s.stage, s.engine, s.lang)
	}
}
