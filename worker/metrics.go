package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the worker's Prometheus series. Series labelled by session
// are deleted when the worker stops handling the session.
type metrics struct {
	utterances *prometheus.CounterVec   // session, language ("" source: recognised)
	stage      *prometheus.HistogramVec // stage, engine, language
	delay      *prometheus.HistogramVec // session, language
	errors     *prometheus.CounterVec   // stage, language
	dropped    *prometheus.CounterVec   // language
	cacheHits  prometheus.Counter
	segments   *prometheus.CounterVec // language
	audio      *prometheus.CounterVec // language
	langs      prometheus.Gauge
	sessions   prometheus.Gauge
}

func newMetrics(r prometheus.Registerer) *metrics {
	buckets := []float64{.05, .1, .25, .5, 1, 2, 3, 5, 8, 13, 20}
	m := &metrics{
		utterances: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_utterances_total",
			Help: "Utterances processed, by session and language: the source language counts recognitions, a target language translated speech published."},
			[]string{"session", "language"}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pentecost_worker_stage_seconds",
			Help: "Time an engine took for one utterance, by stage (recognize, translate, synthesize), engine and language.", Buckets: buckets},
			[]string{"stage", "engine", "language"}),
		delay: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pentecost_worker_delay_seconds",
			Help: "From the end of an utterance (the speaker's last voiced audio reaching the worker) to its translated audio leaving the worker.", Buckets: buckets},
			[]string{"session", "language"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_engine_errors_total",
			Help: "Utterances skipped for a language because an engine failed, by stage and language."},
			[]string{"stage", "language"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_dropped_total",
			Help: "Utterances dropped because the worker fell behind, by language."}, []string{"language"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{Name: "pentecost_worker_translation_cache_hits_total",
			Help: "Translations answered by the cache of repeated phrases."}),
		audio: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_audio_seconds_total",
			Help: "Translated audio published, in seconds, by language."}, []string{"language"}),
		segments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pentecost_worker_segments_total",
			Help: "Utterances cut from source audio by voice-activity detection, by source language."}, []string{"language"}),
		langs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pentecost_worker_languages",
			Help: "Languages this worker currently produces, over all sessions."}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pentecost_worker_sessions",
			Help: "Sessions this worker currently handles."}),
	}
	if r != nil {
		r.MustRegister(m.utterances, m.stage, m.delay, m.errors, m.dropped, m.cacheHits, m.audio, m.segments, m.langs, m.sessions)
	}
	return m
}

func (m *metrics) observe(stage, engine, lang string, start time.Time) {
	m.stage.WithLabelValues(stage, engine, lang).Observe(time.Since(start).Seconds())
}

// forget deletes a session's series.
func (m *metrics) forget(session string) {
	m.utterances.DeletePartialMatch(prometheus.Labels{"session": session})
	m.delay.DeletePartialMatch(prometheus.Labels{"session": session})
}
