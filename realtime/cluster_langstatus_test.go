package realtime_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/redistest"
)

// TestReportLanguageStatus_Cluster: a worker on node A reports a language
// of a session whose speaker is on node B; the report travels on the
// session's control stream through Redis and reaches the speaker. Tiers
// offered on node A show in node B's GET /capabilities.
func TestReportLanguageStatus_Cluster(t *testing.T) {
	rs := redistest.Start(t)
	db := redis.NewDB(rs.URL())
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	sessions := redis.NewSessionService(db)
	node := func() *env {
		return newEnv(t, func(s *realtime.Server) {
			s.Sessions = sessions
			s.Presence, s.Broker = redis.NewPresence(db), redis.NewBroker(db)
			s.PresenceRefresh = time.Second
		})
	}
	a, b := node(), node()
	sess := &pentecost.Session{SourceLanguage: "en", QualityTier: pentecost.QualityStandard}
	u := &pentecost.User{ID: "alice", Name: "alice", Issuer: pentecost.EmbeddedIssuer}
	if err := sessions.CreateSession(pentecost.NewContextWithUser(context.Background(), u), sess); err != nil {
		t.Fatal(err)
	}
	sp := b.dial("sessionId=" + sess.ID + "&token=" + b.token("alice"))
	sp.expect("speakerConnected")

	w := a.dial("role=worker", dialOpts{header: http.Header{"Authorization": {"Bearer worker-secret"}}})
	w.expect("workerConnected")
	w.send(map[string]any{"action": "offerLanguages", "languages": map[string][]string{"en": {"es"}}, "tiers": []string{"premium"}})
	w.expect("languagesOffered")
	w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
	w.expect("languageClaimed")
	w.send(map[string]any{"action": "reportLanguageStatus", "sessionId": sess.ID, "targetLanguage": "es",
		"stage": "synthesize", "errorCode": "unavailable", "latencyMs": 2500})
	st := expectLanguageStatus(t, sp, "es", func(s map[string]any) bool { return s["errorCode"] == "unavailable" })
	if st["stage"] != "synthesize" || st["latencyMs"] != 2500.0 || st["workerId"] == "" {
		t.Fatalf("languageStatus.es on node B = %v", st)
	}

	caps, err := b.Realtime.Capabilities(t.Context())
	if err != nil || len(caps.Tiers) != 2 || caps.Tiers[1] != "premium" || len(caps.Languages["en"]) != 1 {
		t.Fatalf("node B capabilities = %+v, %v", caps, err)
	}
}
