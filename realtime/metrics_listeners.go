package realtime

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// listenerCollector reports, at each scrape, this node's listeners by
// session and language, and those of them whose language no worker
// produces: the demand an operator must see unmet ("listeners want Catalan
// and no worker makes it"). Series exist only for live sessions with
// listeners here, so their number is bounded by what the node serves now
// and a session's series leave with it. Each node reports its own
// listeners: summed over nodes they count each listener once.
type listenerCollector struct {
	srv          *Server
	listeners    *prometheus.Desc
	untranslated *prometheus.Desc
}

// scrapeTimeout bounds the presence look-ups of one scrape.
const scrapeTimeout = 2 * time.Second

func newListenerCollector(s *Server) *listenerCollector {
	return &listenerCollector{
		srv: s,
		listeners: prometheus.NewDesc("pentecost_listeners",
			"Listeners connected to this node, by session and language (live sessions only).",
			[]string{"session", "language"}, nil),
		untranslated: prometheus.NewDesc("pentecost_listeners_untranslated",
			"Listeners connected to this node to a language other than their session's source that no worker produces (0 while one does), by session and language. Not reported for a session whose produced languages could not be read.",
			[]string{"session", "language"}, nil),
	}
}

func (lc *listenerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lc.listeners
	ch <- lc.untranslated
}

// sessionListeners is a session's local listeners by language.
type sessionListeners struct {
	id, source string
	byLanguage map[string]int
}

func (lc *listenerCollector) Collect(ch chan<- prometheus.Metric) {
	s := lc.srv
	s.hub.mu.Lock()
	sessions := make([]*hubSession, 0, len(s.hub.sessions))
	for _, hs := range s.hub.sessions {
		sessions = append(sessions, hs)
	}
	s.hub.mu.Unlock()
	var counts []sessionListeners
	for _, hs := range sessions {
		hs.mu.Lock()
		if !hs.ended && len(hs.listeners) > 0 {
			sl := sessionListeners{id: hs.id, source: hs.info.SourceLanguage, byLanguage: make(map[string]int)}
			for c := range hs.listeners {
				sl.byLanguage[c.language]++
			}
			counts = append(counts, sl)
		}
		hs.mu.Unlock()
	}

	// Presence is read outside every lock (a Redis round trip).
	ctx, cancel := context.WithTimeout(s.ctx, scrapeTimeout)
	defer cancel()
	for _, sl := range counts {
		translated := false
		for lang, n := range sl.byLanguage {
			ch <- prometheus.MustNewConstMetric(lc.listeners, prometheus.GaugeValue, float64(n), sl.id, lang)
			translated = translated || lang != sl.source
		}
		if !translated {
			continue
		}
		produced, err := s.Presence.ProducedLanguages(ctx, sl.id)
		if err != nil {
			// Presence being unreachable has its own signs (pentecost_redis_up);
			// a guess here would be a false alarm or a false all-clear.
			continue
		}
		for lang, n := range sl.byLanguage {
			if lang == sl.source {
				continue
			}
			if contains(produced, lang) {
				n = 0
			}
			ch <- prometheus.MustNewConstMetric(lc.untranslated, prometheus.GaugeValue, float64(n), sl.id, lang)
		}
	}
}
