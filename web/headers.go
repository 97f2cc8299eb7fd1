package web

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// setSecurityHeaders sets the headers every page and asset carries: a
// Content-Security-Policy that allows only this server's own scripts,
// styles and images (no inline scripts) and WebSockets to this server,
// and the usual hardening headers. 'wasm-unsafe-eval' lets the vendored
// Opus decoder (static/vendor/opus-decoder) compile its WebAssembly; it
// allows no JavaScript eval, and only our own scripts can ask for it.
func setSecurityHeaders(w http.ResponseWriter, r *http.Request, publicURL string) {
	connect := []string{"'self'"}
	// 'self' covers ws: and wss: to the same host only in newer browsers;
	// naming them keeps older Safari working.
	for _, host := range wsHosts(r, publicURL) {
		connect = append(connect, "ws://"+host, "wss://"+host)
	}
	csp := strings.Join([]string{
		"default-src 'self'",
		"script-src 'self' 'wasm-unsafe-eval'",
		"style-src 'self'",
		"img-src 'self' data:",
		"media-src 'self' blob:",
		"connect-src " + strings.Join(connect, " "),
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'self'",
		"frame-ancestors 'none'",
	}, "; ")
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// Listener links carry the session ID; do not hand it to other sites.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Permissions-Policy", "microphone=(self), camera=(), geolocation=(), payment=()")
	// Browsers honour COOP only from potentially trustworthy origins and log
	// an error for it on plain HTTP to any other host (a venue's LAN address).
	if trustworthyOrigin(r) {
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
	}
}

// trustworthyOrigin reports whether browsers treat the request's origin as
// potentially trustworthy: HTTPS, or a loopback host.
func trustworthyOrigin(r *http.Request) bool {
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// wsHosts returns the hosts WebSockets may go to: the request's own host
// and PublicURL's, each only if it is a plain host[:port].
func wsHosts(r *http.Request, publicURL string) []string {
	var out []string
	add := func(host string) {
		if host == "" || !plainHost(host) {
			return
		}
		for _, h := range out {
			if strings.EqualFold(h, host) {
				return
			}
		}
		out = append(out, host)
	}
	add(r.Host)
	if u, err := url.Parse(publicURL); err == nil {
		add(u.Host)
	}
	return out
}

// plainHost reports whether s holds only characters of a host and port,
// so that nothing a client sends in Host can change the policy's meaning.
func plainHost(s string) bool {
	for _, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '-' || c == ':' || c == '[' || c == ']':
		default:
			return false
		}
	}
	return len(s) <= 255
}
