package web_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	pthttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/inmem"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/sqlite"
	"github.com/pentecost/pentecost/web"
)

// testServer is a whole Pentecost server on loopback, wired as
// cmd/pentecost wires it: a real SQLite file, an embedded account, the
// HTTP API, the WebSocket endpoint and the pages.
type testServer struct {
	URL      string
	Username string
	Password string
	Web      *web.Handler
	// AdminPassword is the password of the account "admin", an admin,
	// when the server was started withAdmin.
	AdminPassword string
}

// serverOption changes how startServer wires the server.
type serverOption func(*serverSetup)

// serverSetup holds the choices serverOptions make.
type serverSetup struct {
	notifying bool
	admin     bool
}

// withNotifyingSessions gives the HTTP API the real-time server's view of
// the sessions (rt.NotifyingSessions), as cmd/pentecost does: changes made
// over HTTP reach connected clients, and GET /sessions/{id}/languages
// knows which languages workers produce.
func withNotifyingSessions() serverOption { return func(s *serverSetup) { s.notifying = true } }

// withAdmin adds the account "admin", an admin, beside the speaker.
func withAdmin() serverOption { return func(s *serverSetup) { s.admin = true } }

// startServer starts a server; configure adjusts the pages and the
// real-time server before they serve; opts change the wiring.
func startServer(t testing.TB, configureWeb func(*web.Handler), configureRT func(*realtime.Server), opts ...serverOption) *testServer {
	t.Helper()
	ctx := context.Background()

	db := sqlite.NewDB(filepath.Join(t.TempDir(), "pentecost.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	sessions := sqlite.NewSessionService(db)
	users := sqlite.NewUserStore(db)
	accounts := auth.NewAccounts(users)
	var setup serverSetup
	for _, o := range opts {
		o(&setup)
	}
	password := auth.GeneratePassword()
	if _, err := accounts.Add(ctx, "speaker", password); err != nil {
		t.Fatal(err)
	}
	var adminPassword string
	if setup.admin {
		adminPassword = auth.GeneratePassword()
		if _, err := accounts.AddWithRole(ctx, "admin", adminPassword, pentecost.RoleAdmin); err != nil {
			t.Fatal(err)
		}
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issuer := auth.NewEmbedded(key)
	issuer.Users = users
	verifier := auth.NewVerifier(issuer)

	rt := realtime.NewServer()
	rt.Sessions, rt.Verifier = sessions, verifier
	rt.Presence, rt.Broker = inmem.NewPresence(), inmem.NewBroker()
	rt.RateLimiter = inmem.NewRateLimiter()
	rt.Registerer = prometheus.NewRegistry()
	if configureRT != nil {
		configureRT(rt)
	}
	if err := rt.Open(); err != nil {
		t.Fatal(err)
	}

	h := web.NewHandler()
	if configureWeb != nil {
		configureWeb(h)
	}

	api := pthttp.NewServer()
	api.Addr = "127.0.0.1:0"
	api.Sessions, api.Verifier = sessions, verifier
	if setup.notifying {
		api.Sessions = rt.NotifyingSessions(sessions)
	}
	api.Accounts, api.Issuer = accounts, issuer
	api.RateLimiter = inmem.NewRateLimiter()
	reg := prometheus.NewRegistry()
	api.Registerer, api.Gatherer = reg, reg
	api.Handle("GET /ws", rt)
	for _, r := range h.Routes() {
		api.Handle(r.Pattern, r.Handler)
	}
	if err := api.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rt.Close()
		_ = api.Close()
	})
	return &testServer{URL: api.URL(), Username: "speaker", Password: password, Web: h, AdminPassword: adminPassword}
}
