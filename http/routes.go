package http

import (
	"net/http"
	"strings"
	"time"

	"github.com/pentecost/pentecost/sessionid"
)

// route is one API endpoint. The server registers exactly the routes in the
// table below, and a test checks that docs/openapi.json describes the same.
type route struct {
	Method string
	Path   string
	// Auth requires a speaker's bearer token; Admin (with Auth) requires
	// that its account be an admin now, else 403 FORBIDDEN.
	Auth, Admin bool
	// Body is set when the handler reads a JSON body, and Limited when the
	// request counts against a rate limit (a session ID in the path counts
	// against the client's limit of lookups that miss, lookup.go). Neither
	// changes what the server does; a test checks docs/openapi.json lists
	// the statuses they bring.
	Body, Limited bool
	// Serve handles the request.
	Serve func(s *Server, w http.ResponseWriter, r *http.Request)
}

// routes is the API. Paths are ServeMux patterns.
var routes = []route{
	{Method: "POST", Path: "/sessions", Auth: true, Body: true, Limited: true, Serve: (*Server).handleCreateSession},
	{Method: "GET", Path: "/sessions", Auth: true, Serve: (*Server).handleListSessions},
	{Method: "GET", Path: "/sessions/{id}", Limited: true, Serve: (*Server).handleGetSession},
	{Method: "GET", Path: "/sessions/{id}/languages", Limited: true, Serve: (*Server).handleSessionLanguages},
	{Method: "PATCH", Path: "/sessions/{id}", Auth: true, Body: true, Limited: true, Serve: (*Server).handleUpdateSession},
	{Method: "DELETE", Path: "/sessions/{id}", Auth: true, Limited: true, Serve: (*Server).handleEndSession},
	{Method: "GET", Path: "/languages", Serve: (*Server).handleLanguages},
	{Method: "GET", Path: "/capabilities", Serve: (*Server).handleCapabilities},
	{Method: "POST", Path: "/auth/login", Body: true, Limited: true, Serve: (*Server).handleLogin},
	{Method: "GET", Path: "/healthz", Serve: (*Server).handleHealthz},
	{Method: "GET", Path: "/readyz", Serve: (*Server).handleReadyz},
	{Method: "GET", Path: "/metrics", Serve: (*Server).handleMetrics},

	// The admin page's API (admin.go).
	{Method: "GET", Path: "/admin/api/accounts", Auth: true, Admin: true, Serve: (*Server).handleAdminAccounts},
	{Method: "POST", Path: "/admin/api/accounts", Auth: true, Admin: true, Body: true, Serve: (*Server).handleAdminAddAccount},
	{Method: "PATCH", Path: "/admin/api/accounts/{name}", Auth: true, Admin: true, Body: true, Serve: (*Server).handleAdminUpdateAccount},
	{Method: "DELETE", Path: "/admin/api/accounts/{name}", Auth: true, Admin: true, Serve: (*Server).handleAdminRemoveAccount},
	{Method: "POST", Path: "/admin/api/accounts/{name}/password", Auth: true, Admin: true, Body: true, Serve: (*Server).handleAdminSetPassword},
	{Method: "GET", Path: "/admin/api/sessions", Auth: true, Admin: true, Serve: (*Server).handleAdminSessions},
	{Method: "DELETE", Path: "/admin/api/sessions/{id}", Auth: true, Admin: true, Limited: true, Serve: (*Server).handleAdminEndSession},
}

// route wraps an API endpoint in its per-route middleware: the read
// deadline and body limit, authentication, and recording the route for logs
// and metrics.
func (s *Server) route(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noteRoute(r)
		// Set here rather than as http.Server.ReadTimeout, so that
		// handlers mounted with Handle (WebSockets, streams) read for as
		// long as they need. net/http's writers all take a deadline.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.ReadTimeout))
		r.Body = http.MaxBytesReader(w, r.Body, s.MaxBodyBytes)
		if rt.Auth {
			var ok bool
			if r, ok = s.authenticate(w, r); !ok {
				return
			}
		}
		if rt.Admin {
			if err := requireAdmin(r); err != nil {
				Error(w, r, err)
				return
			}
		}
		rt.Serve(s, w, r)
	})
}

// mounted wraps a handler added with Handle: it is only recorded.
func (s *Server) mounted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noteRoute(r)
		h.ServeHTTP(w, r)
	})
}

// noteRoute tells the outer middleware which route matched, once the mux
// has matched it.
func noteRoute(r *http.Request) {
	info := infoFrom(r)
	if info == nil {
		return
	}
	info.route = routeLabel(r.Pattern)
	// The ID as the store knows it, so that log searches find every
	// spelling; text that is no ID at all is left out of the logs.
	if id, err := sessionid.Normalize(r.PathValue("id")); err == nil {
		info.sessionID = id
	}
}

// routeLabel drops the method from a pattern: "GET /sessions/{id}" becomes
// "/sessions/{id}"; the method is a label of its own.
func routeLabel(pattern string) string {
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		return strings.TrimSpace(pattern[i:])
	}
	return pattern
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
