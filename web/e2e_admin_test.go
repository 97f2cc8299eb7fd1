package web_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	"github.com/pentecost/pentecost/client"
	pthttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/realtime"
)

// TestBrowserAdmin drives the admin page in Chromium (web/e2e/admin.mjs)
// against a whole server: a speaker's session has a listener in Spanish,
// which a worker translates, and one in French, which nobody does; the
// admin sees them, manages an account, and ends the session, and both
// listeners here must hear sessionEnded. A speaker account is refused the
// page. Screenshots at 360×740 go to web/e2e/screenshots.
func TestBrowserAdmin(t *testing.T) {
	requireBrowser(t)
	workerSecret := auth.GeneratePassword()
	srv := startServer(t, nil, func(rt *realtime.Server) {
		rt.ConnectionLimit = pentecost.Limit{Events: 200, Per: time.Minute}
		rt.WorkerVerifier = auth.NewWorkerSecrets([]string{"e2e:" + workerSecret})
	}, withNotifyingSessions(), withAdmin())
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()

	// The speaker's session, made over the API as the speaker page does.
	api := pthttp.NewClient(srv.URL)
	token, err := api.Login(ctx, srv.Username, srv.Password)
	if err != nil {
		t.Fatal(err)
	}
	api.Token = token
	sess := &pentecost.Session{SourceLanguage: "en"}
	if err := api.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}

	// A worker that can translate English into Spanish and French, and
	// produces Spanish for this session.
	w := client.NewWorker(srv.URL, workerSecret)
	if err := w.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	if err := w.OfferLanguages(ctx, map[string][]string{"en": {"es", "fr"}}); err != nil {
		t.Fatal(err)
	}

	// Listeners in Spanish and French; each records sessionEnded.
	var mu sync.Mutex
	ended := map[string]bool{}
	for _, lang := range []string{"es", "fr"} {
		l := client.NewListener(srv.URL, sess.ID, lang)
		l.OnEvent = func(e client.Event) {
			if e.Type == client.EventSessionEnded {
				mu.Lock()
				ended[lang] = true
				mu.Unlock()
			}
		}
		if err := l.Open(ctx); err != nil {
			t.Fatalf("listener %s: %v", lang, err)
		}
		t.Cleanup(func() { _ = l.Close() })
	}
	if err := w.Claim(ctx, sess.ID, "es"); err != nil {
		t.Fatal(err)
	}

	runBrowserScript(t, "admin.mjs",
		"PENTECOST_URL="+srv.URL,
		"PENTECOST_ADMIN_USERNAME=admin",
		"PENTECOST_ADMIN_PASSWORD="+srv.AdminPassword,
		"PENTECOST_USERNAME="+srv.Username,
		"PENTECOST_PASSWORD="+srv.Password,
		"PENTECOST_SESSION="+sess.ID,
	)

	// The admin ended the session: both listeners were told.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := ended["es"] && ended["fr"]
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listeners told of the end: %v; want es and fr", ended)
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, err := api.FindSessionByID(ctx, sess.ID)
	if err != nil || got.Status != pentecost.SessionEnded {
		t.Fatalf("the session after the script: %+v, %v", got, err)
	}
}
