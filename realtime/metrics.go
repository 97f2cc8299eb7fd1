package realtime

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the real-time path's Prometheus metrics.
type metrics struct {
	conns       *prometheus.GaugeVec
	joinsTotal  *prometheus.CounterVec
	joinLatency prometheus.Histogram
	framesIn    prometheus.Counter
	framesOut   prometheus.Counter
	dropped     prometheus.Counter
	duplicates  prometheus.Counter
	slow        prometheus.Counter
	queued      prometheus.Gauge
	batch       prometheus.Histogram
	fanout      prometheus.Histogram
	panics      prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pentecost_ws_connections", Help: "Open WebSocket connections by role.",
		}, []string{"role"}),
		joinsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pentecost_ws_joins_total", Help: "WebSocket joins by role and result (ok or an error code).",
		}, []string{"role", "result"}),
		joinLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pentecost_ws_join_duration_seconds", Help: "Time from handshake to joined or refused.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		framesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pentecost_ws_frames_in_total", Help: "Audio chunks received from speakers and workers.",
		}),
		framesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pentecost_ws_frames_out_total", Help: "Audio frames written to connections.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pentecost_ws_frames_dropped_total", Help: "Audio frames dropped because a connection's queue was full.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pentecost_ws_duplicate_chunks_total", Help: "Speaker chunks dropped as duplicates by sequence number.",
		}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pentecost_ws_slow_disconnects_total", Help: "Connections closed for falling behind (4001).",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pentecost_ws_queued_frames", Help: "Frames waiting in connection queues.",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pentecost_ws_write_batch_frames", Help: "Frames coalesced into one write (queue depth at write time).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pentecost_ws_fanout_seconds", Help: "Time from receiving a frame to having queued it for every local receiver.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pentecost_ws_panics_total", Help: "Connections closed with 1011 after a panic while serving them (a bug: see the log).",
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.conns, m.joinsTotal, m.joinLatency, m.framesIn, m.framesOut,
		m.dropped, m.duplicates, m.slow, m.queued, m.batch, m.fanout, m.panics} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// joins counts a join attempt by role and result.
func (m *metrics) joins(r role, code string) {
	if code == "" {
		code = "ok"
	}
	m.joinsTotal.WithLabelValues(r.String(), code).Inc()
}
