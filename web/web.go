// Package web serves Pentecost's browser pages: the landing page where
// listeners type a session code, the listener page, the speaker page, the
// admin page, their
// static assets (plain HTML, CSS and JavaScript modules embedded in the
// binary, no build step) and a QR code of each session's listener link.
//
// The pages talk to the server only through the public HTTP API and the
// WebSocket protocol (docs/protocol.md), through the JavaScript client
// module static/js/pentecost.js (docs/web-client.md).
package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"

	"github.com/pentecost/pentecost"
	pthttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/sessionid"
)

//go:embed static templates
var files embed.FS

// Log keys used by this package.
const (
	logKeyError = "error"
	logKeyPage  = "page"
)

// SignInLink is an external identity provider the speaker page offers
// besides the embedded accounts. The provider must return the token in the
// URL fragment of its redirect back to /speak (the OAuth 2.0 implicit flow,
// e.g. Cognito's hosted UI with response_type=token), with the state the
// page added to URL.
type SignInLink struct {
	// Name is shown on the button, e.g. "Sign in with Cognito".
	Name string `json:"name"`
	// URL is the provider's authorization URL, with its client_id,
	// response_type, scope and redirect_uri (this server's /speak) already
	// in the query. The page appends state.
	URL string `json:"url"`
	// TokenParam is the fragment parameter holding the token the server's
	// verifier accepts: "id_token" (the default) or "access_token".
	TokenParam string `json:"tokenParam"`
}

// Route is one route the Handler serves, for mounting on another mux with
// Handle(route.Pattern, route.Handler).
type Route struct {
	Pattern string // a Go 1.22 ServeMux pattern, e.g. "GET /listen/{id}"
	Handler http.Handler
}

// Handler serves the pages. Set its fields before the first request; it
// is safe for concurrent use afterwards.
type Handler struct {
	// PublicURL is the base URL listeners reach the server at, e.g.
	// "https://live.example.org"; it is used for the QR code and the link
	// the speaker shares. When empty, the URL the request came in on is
	// used, except that a loopback host (localhost, 127.0.0.1, ::1), which
	// no phone can open, is replaced by this machine's LAN address, and
	// the speaker page offers the others (see LANAddrs).
	PublicURL string

	// ListenerPort is the port of the plain-HTTP listener the server runs
	// beside its TLS one (e.g. 8080 when the speaker page is on
	// https://…:8443). When set, listener links and QR codes use http and
	// this port whatever page the speaker opened, so that phones stay on
	// plain HTTP with no certificate warning. 0: the request's scheme and
	// port. PublicURL wins over it.
	ListenerPort int

	// LANAddrs returns this machine's addresses on its local networks, in
	// order of preference, for listener links when the speaker opened the
	// page as localhost. Defaults to lan.MachineAddrs (read on each
	// request, so a laptop that joins the venue's Wi-Fi after start is
	// seen); tests set it to describe other machines.
	LANAddrs func() ([]netip.Addr, error)

	// SignInLinks are external identity providers offered on the speaker
	// page. None by default: the page then offers only embedded accounts.
	SignInLinks []SignInLink

	// Logger receives errors rendering pages. Defaults to discarding.
	Logger *slog.Logger

	once   sync.Once
	tmpl   *template.Template
	links  []SignInLink      // SignInLinks with defaults filled in
	pages  map[string]*asset // rendered HTML by page name, for pages whose config does not vary
	static map[string]*asset // by path below static/
	mux    *http.ServeMux
	err    error
}

// NewHandler returns a Handler with default settings.
func NewHandler() *Handler {
	return &Handler{Logger: slog.New(slog.DiscardHandler)}
}

// Routes returns the routes to mount, in ServeMux pattern form:
//
//	GET /{$}              landing page
//	GET /listen/{id}      listener page
//	GET /speak            speaker page
//	GET /admin            admin page (accounts and live sessions, through
//	                      the admin API; the page itself is public)
//	GET /static/          embedded assets
//	GET /qr/{file}        QR code of a listener link, /qr/{sessionId}.svg;
//	                      ?base=N or ?host=ADDR picks one of the listener
//	                      addresses the speaker page offers (400
//	                      VALIDATION_INVALID_FIELD for any other)
func (h *Handler) Routes() []Route {
	return []Route{
		{"GET /{$}", http.HandlerFunc(h.serveLanding)},
		{"GET /listen/{id}", http.HandlerFunc(h.serveListen)},
		{"GET /speak", http.HandlerFunc(h.serveSpeak)},
		{"GET /admin", http.HandlerFunc(h.serveAdmin)},
		{"GET /static/", http.HandlerFunc(h.serveStatic)},
		{"GET /qr/{file}", http.HandlerFunc(h.serveQR)},
	}
}

// ServeHTTP serves the routes on a mux of the Handler's own, for using the
// pages without another server. Unknown paths get 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.init()
	h.mux.ServeHTTP(w, r)
}

// init renders the pages and indexes the assets once, after the exported
// fields have been set.
func (h *Handler) init() {
	h.once.Do(func() {
		if h.Logger == nil {
			h.Logger = slog.New(slog.DiscardHandler)
		}
		h.mux = http.NewServeMux()
		for _, rt := range h.Routes() {
			h.mux.Handle(rt.Pattern, rt.Handler)
		}
		h.static, h.err = loadStatic()
		if h.err == nil {
			h.pages, h.err = h.renderPages()
		}
		if h.err != nil {
			h.Logger.Error("web pages unavailable", logKeyError, h.err)
		}
	})
}

// pageConfig is what the pages learn about the server, passed in <meta>
// tags since the Content-Security-Policy forbids inline scripts.
type pageConfig struct {
	PublicURL   string       `json:"publicUrl"`
	SignInLinks []SignInLink `json:"signInLinks"`
	// ListenerBases (speaker page only) are the base URLs the listener
	// link may start with, the default first: see listenerBases. The page
	// lets the speaker pick one when there are several.
	ListenerBases []string `json:"listenerBases,omitempty"`
}

// renderPages parses the templates and renders the pages whose config is
// the same for every request; the speaker page is rendered per request,
// since its listener links depend on the host it was opened at.
func (h *Handler) renderPages() (map[string]*asset, error) {
	tmpl, err := template.ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse templates: %w", err)
	}
	h.tmpl = tmpl
	h.links = make([]SignInLink, 0, len(h.SignInLinks))
	for _, l := range h.SignInLinks {
		if l.TokenParam == "" {
			l.TokenParam = "id_token"
		}
		h.links = append(h.links, l)
	}
	pages := map[string]*asset{}
	for _, name := range []string{"index", "listen", "speak", "admin"} {
		a, err := h.renderPage(name, nil)
		if err != nil {
			return nil, err
		}
		pages[name] = a
	}
	return pages, nil
}

// renderPage renders one page with the server's config and the given
// listener bases.
func (h *Handler) renderPage(name string, bases []string) (*asset, error) {
	cfg, err := json.Marshal(pageConfig{PublicURL: strings.TrimSuffix(h.PublicURL, "/"), SignInLinks: h.links, ListenerBases: bases})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&b, name+".html", map[string]any{"Config": string(cfg)}); err != nil {
		return nil, fmt.Errorf("web: render %s: %w", name, err)
	}
	return newAsset(name+".html", b.Bytes()), nil
}

func (h *Handler) serveLanding(w http.ResponseWriter, r *http.Request) { h.servePage(w, r, "index") }

// serveAdmin serves the admin page. It holds nothing secret: what it
// shows comes from the admin API, which only admins' tokens may call.
func (h *Handler) serveAdmin(w http.ResponseWriter, r *http.Request) { h.servePage(w, r, "admin") }

// serveSpeak serves the speaker page with the listener links for the host
// it was opened at (listenerBases).
func (h *Handler) serveSpeak(w http.ResponseWriter, r *http.Request) {
	h.init()
	if h.err != nil {
		pthttp.Error(w, r, h.err) // internal: logged, not shown
		return
	}
	a, err := h.renderPage("speak", h.listenerBases(r))
	if err != nil {
		h.Logger.Error("render page", logKeyPage, "speak", logKeyError, err)
		pthttp.Error(w, r, err)
		return
	}
	setSecurityHeaders(w, r, h.PublicURL)
	if h.PublicURL == "" {
		w.Header().Add("Vary", "Host")
	}
	a.serve(w, r)
}

// serveListen serves the listener page. An ID typed loosely
// (/listen/Golden-Eagle-427) is redirected to its canonical form so that
// shared links look alike; an ID that cannot be one still gets the page,
// which explains the problem to the person holding the phone.
func (h *Handler) serveListen(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("id")
	if id, err := sessionid.Normalize(raw); err == nil && id != raw {
		u := url.URL{Path: "/listen/" + id, RawQuery: r.URL.RawQuery}
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	h.servePage(w, r, "listen")
}

func (h *Handler) servePage(w http.ResponseWriter, r *http.Request, name string) {
	h.init()
	if h.err != nil {
		pthttp.Error(w, r, h.err) // internal: logged, not shown
		return
	}
	setSecurityHeaders(w, r, h.PublicURL)
	h.pages[name].serve(w, r)
}

// serveStatic serves an embedded asset under /static/.
func (h *Handler) serveStatic(w http.ResponseWriter, r *http.Request) {
	h.init()
	a := h.static[strings.TrimPrefix(r.URL.Path, "/static/")]
	if a == nil {
		pthttp.Error(w, r, pentecost.Errorf(pentecost.ENOTFOUND, "Not found."))
		return
	}
	setSecurityHeaders(w, r, h.PublicURL)
	a.serve(w, r)
}

// staticFS is the static/ tree of the embedded files.
func staticFS() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the directory is embedded; this cannot fail
	}
	return sub
}
