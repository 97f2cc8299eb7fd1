package http

import (
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address of the client that sent r. X-Forwarded-For
// is believed only when the direct peer is one of the trusted proxies: the
// header is then read from the right, skipping trusted proxies, and the
// first address that is not one is the client. Everything left of it could
// have been written by the client itself and is ignored. It returns the
// zero Addr when the peer address cannot be parsed.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	client := peer.Addr().Unmap()
	if !isTrusted(client, trusted) {
		return client
	}

	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			addr, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return client // a trusted hop wrote garbage: stop at that hop
			}
			client = addr.Unmap()
			if !isTrusted(client, trusted) {
				return client
			}
		}
	}
	return client // every hop is trusted: the leftmost is as far as we know
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// truncatedIP returns the network of a, never the full address, for logs:
// a /24 for IPv4 and a /48 for IPv6.
func truncatedIP(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	return p.String()
}

// redactAddrs replaces every IP address (with or without a port) among the
// space-separated words of msg by its truncated network, for net/http's own
// messages such as "TLS handshake error from 203.0.113.7:5123: EOF".
func redactAddrs(msg string) string {
	words := strings.Split(msg, " ")
	for i, w := range words {
		core := strings.TrimRight(w, ":,;")
		var a netip.Addr
		if ap, err := netip.ParseAddrPort(core); err == nil {
			a = ap.Addr()
		} else if ip, err := netip.ParseAddr(core); err == nil {
			a = ip
		} else {
			continue
		}
		words[i] = truncatedIP(a.Unmap()) + w[len(core):]
	}
	return strings.Join(words, " ")
}
