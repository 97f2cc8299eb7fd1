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
	// refreshes counts listener refreshes by what they replaced (limits.go).
	refreshes *prometheus.CounterVec
	// staleSkipped counts audio not sent for being older than MaxFrameAge
	// (hub.go), by delivery: live or resume; and audio a producer sent that
	// this node dropped before publishing (publish.go): publish.
	staleSkipped *prometheus.CounterVec
	// tokenInvalid and accountCheckFailed count the re-checks of live
	// speakers' tokens that closed a connection or could not be answered.
	tokenInvalid       prometheus.Counter
	accountCheckFailed prometheus.Counter
	// fanoutSends counts the listener writes of fan-out passes by how they
	// were made (sendring.go): sendsRing and sendsWrite are its children.
	fanoutSends           *prometheus.CounterVec
	sendsRing, sendsWrite prometheus.Counter
}

func newMetrics() *metrics {
	m := newMetricsVecs()
	m.sendsRing = m.fanoutSends.WithLabelValues(sendIOURing)
	m.sendsWrite = m.fanoutSends.WithLabelValues(sendWrite)
	return m
}

// The methods of pentecost_ws_fanout_sends_total.
const (
	sendIOURing = "io_uring"
	sendWrite   = "write"
)

func newMetricsVecs() *metrics {
	return &metrics{
		fanoutSends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pentecost_ws_fanout_sends_total", Help: "Listener writes tried by fan-out, by system call: io_uring (a stream's listeners sent with one call per 128) or write (one call each, where io_uring is off or refused).",
		}, []string{"method"}),
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
			Name: "pentecost_ws_slow_disconnects_total", Help: "Connections closed for falling behind (4001): their queue overflowed, or a write to them was blocked for the write timeout.",
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
		staleSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pentecost_stale_frames_skipped_total",
			Help: "Audio frames not sent to listeners for being older than the maximum frame age: live, frames this node received late (a broker outage, a backlog), once per frame; resume, frames left out of a resuming connection's replay, once per connection; publish, frames a speaker or worker sent that this node dropped instead of publishing, the broker being too slow or unreachable for them to be published in time (older than the maximum age, or pushed out of a full publish queue).",
		}, []string{"delivery"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pentecost_ws_listener_refreshes_total",
			Help: "Listener refreshes by what they replaced: ticket, the connection their ticket named; sameClient, the same client's oldest connection (no ticket); join, nothing (counted as an ordinary join).",
		}, []string{"replaced"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pentecost_ws_panics_total", Help: "Connections closed with 1011 after a panic while serving them (a bug: see the log).",
		}),
		tokenInvalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pentecost_ws_token_invalid_disconnects_total", Help: "Speaker connections closed (4004) because their token no longer holds: account removed, password changed or token expired.",
		}),
		accountCheckFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pentecost_ws_token_check_failures_total", Help: "Re-checks of a live speaker's token that could not be answered (store or issuer unavailable); the connection was kept.",
		}),
	}
}

// register registers the metrics, and extra collectors, with r.
func (m *metrics) register(r prometheus.Registerer, extra ...prometheus.Collector) error {
	for _, d := range []string{skipLive, skipResume, skipPublish} {
		m.staleSkipped.WithLabelValues(d) // shown at 0 before any skip
	}
	for _, c := range append([]prometheus.Collector{m.conns, m.joinsTotal, m.joinLatency, m.framesIn, m.framesOut,
		m.dropped, m.duplicates, m.slow, m.queued, m.batch, m.fanout, m.panics, m.refreshes,
		m.tokenInvalid, m.accountCheckFailed, m.staleSkipped, m.fanoutSends}, extra...) {
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
