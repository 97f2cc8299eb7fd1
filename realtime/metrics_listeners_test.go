package realtime_test

import (
	"fmt"
	"maps"
	"net/http"
	"testing"
)

// listenerSeries returns the node's pentecost_listeners (or another gauge
// by session and language) as "session/language" → value.
func (e *env) listenerSeries(name string) map[string]float64 {
	e.t.Helper()
	mfs, err := e.Registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var session, lang string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "session":
					session = lp.GetValue()
				case "language":
					lang = lp.GetValue()
				default:
					e.t.Fatalf("%s: unexpected label %s", name, lp.GetName())
				}
			}
			out[session+"/"+lang] = value(m)
		}
	}
	return out
}

// pollSeries waits until a gauge's series are exactly want.
func (e *env) pollSeries(name string, want map[string]float64) {
	e.t.Helper()
	var got map[string]float64
	poll(e.t, fmt.Sprintf("%s = %v", name, want), func() bool {
		got = e.listenerSeries(name)
		return maps.Equal(got, want)
	})
}

// TestListenerMetrics: the node reports its listeners by session and
// language, and those whose language no worker produces; a worker's claim
// clears its language, a listener leaving or the session ending takes
// their series away.
func TestListenerMetrics(t *testing.T) {
	e := newEnv(t)
	a, b := e.createSession("alice"), e.createSession("alice")
	join := func(id, lang string) *client {
		c := e.dial("sessionId=" + id + "&targetLanguage=" + lang)
		c.expect("sessionJoined")
		return c
	}
	join(a.ID, "en")
	join(a.ID, "es")
	join(a.ID, "es")
	ca := join(a.ID, "ca")
	join(b.ID, "es")
	e.pollSeries("pentecost_listeners", map[string]float64{
		a.ID + "/en": 1, a.ID + "/es": 2, a.ID + "/ca": 1, b.ID + "/es": 1})
	// English is the source: heard without a worker.
	e.pollSeries("pentecost_listeners_untranslated", map[string]float64{
		a.ID + "/es": 2, a.ID + "/ca": 1, b.ID + "/es": 1})

	w := e.dial("role=worker", dialOpts{header: http.Header{"Authorization": {"Bearer worker-secret"}}})
	w.expect("workerConnected")
	w.send(map[string]any{"action": "subscribeSession", "sessionId": a.ID})
	w.expect("subscribed")
	w.send(map[string]any{"action": "claimLanguage", "sessionId": a.ID, "targetLanguage": "es"})
	w.expect("languageClaimed")
	e.pollSeries("pentecost_listeners_untranslated", map[string]float64{
		a.ID + "/es": 0, a.ID + "/ca": 1, b.ID + "/es": 1})

	ca.closeNormally()
	e.pollSeries("pentecost_listeners", map[string]float64{a.ID + "/en": 1, a.ID + "/es": 2, b.ID + "/es": 1})
	e.pollSeries("pentecost_listeners_untranslated", map[string]float64{a.ID + "/es": 0, b.ID + "/es": 1})

	// The worker leaves: Spanish in a is wanted and unproduced again.
	w.closeNormally()
	e.pollSeries("pentecost_listeners_untranslated", map[string]float64{a.ID + "/es": 2, b.ID + "/es": 1})

	sp := e.dial("sessionId=" + a.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	sp.send(map[string]any{"action": "endSession"})
	sp.expect("sessionEnded")
	e.pollSeries("pentecost_listeners", map[string]float64{b.ID + "/es": 1})
	e.pollSeries("pentecost_listeners_untranslated", map[string]float64{b.ID + "/es": 1})
}
