package http

import (
	"net/http"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pentecost/pentecost"
)

// metrics are the server's Prometheus collectors.
type metrics struct {
	requests      *prometheus.HistogramVec
	sessionCreate prometheus.Histogram
	errors        *prometheus.CounterVec

	// handler serves the exposition of the gatherer.
	handler http.Handler
}

// newMetrics registers the server's metrics with reg and serves gatherer.
// active is called at each scrape to count live sessions.
func newMetrics(reg prometheus.Registerer, gatherer prometheus.Gatherer, active func() float64) (*metrics, error) {
	m := &metrics{
		handler: promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pentecost_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern, method and status class.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method", "status"}),
		sessionCreate: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pentecost_session_create_duration_seconds",
			Help:    "Time the session store took to create a session, successful or not.",
			Buckets: prometheus.DefBuckets,
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pentecost_errors_total",
			Help: "Error responses sent, by error code.",
		}, []string{"code"}),
	}
	sessions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pentecost_sessions_active",
		Help: "Sessions that are active or paused, counted in the store at scrape time.",
	}, active)

	for _, c := range []prometheus.Collector{m.requests, m.sessionCreate, m.errors, sessions} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// handleMetrics serves the Prometheus exposition on the API's port: never
// when MetricsAddr gives it a listener of its own, and otherwise only to
// clients on loopback or private addresses, where scrapers live. What the
// server is doing is nobody else's business: to them /metrics does not
// exist.
func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if s.MetricsAddr != "" || !s.privateClient(r) {
		Error(w, r, pentecost.Errorf(pentecost.ENOTFOUND, "Not found."))
		return
	}
	s.metrics.handler.ServeHTTP(w, r)
}

// PrivateOnly serves h only to the clients /metrics is served to on the
// API port (loopback and private addresses); to anyone else the route
// does not exist. For debugging endpoints such as pprof.
func (s *Server) PrivateOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.privateClient(r) {
			Error(w, r, pentecost.Errorf(pentecost.ENOTFOUND, "Not found."))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// privateClient reports whether r comes from loopback or a private network
// (RFC 1918, RFC 4193) as far as the server can tell. A request forwarded
// by a proxy that is not trusted, or naming its client in a header that
// ClientIP does not read, may come from anyone: it is not.
func (s *Server) privateClient(r *http.Request) bool {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	if r.Header.Get("Forwarded") != "" || r.Header.Get("X-Real-IP") != "" {
		return false
	}
	if r.Header.Get("X-Forwarded-For") != "" && !isTrusted(peer.Addr().Unmap(), s.TrustedProxies) {
		return false
	}
	a := ClientIP(r, s.TrustedProxies)
	return a.IsLoopback() || a.IsPrivate()
}
