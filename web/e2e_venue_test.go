package web_test

import (
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	"github.com/pentecost/pentecost/realtime"
)

// TestBrowserVenue runs the listener page as phones in a venue meet it
// (web/e2e/venue.mjs): on a plain-HTTP address that is not a secure
// context it plays through scheduled buffers, on 127.0.0.1 through the
// AudioWorklet, and an analyser on each page's output hears the speaker's
// tone; each listener state shows at the event that causes it (waiting,
// live through a pause in translated audio, speaker away through backlog
// audio, offline, no translation, paused, muted, ended); the interface
// follows the listener's language, Arabic right to left.
func TestBrowserVenue(t *testing.T) {
	requireBrowser(t)
	workerSecret := auth.GeneratePassword()
	srv := startServer(t, nil, func(rt *realtime.Server) {
		rt.ConnectionLimit = pentecost.Limit{Events: 200, Per: time.Minute}
		rt.WorkerVerifier = auth.NewWorkerSecrets([]string{"e2e:" + workerSecret})
	}, withNotifyingSessions()) // GET /sessions/{id}/languages knows what workers produce
	runBrowserScript(t, "venue.mjs",
		"PENTECOST_URL="+srv.URL,
		"PENTECOST_USERNAME="+srv.Username,
		"PENTECOST_PASSWORD="+srv.Password,
		"PENTECOST_WORKER_SECRET="+workerSecret,
	)
}
