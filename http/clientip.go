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

// Default prefix lengths of ClientKey: an IPv4 address is one client, and
// so is an IPv6 /64, which one subscriber (a home, a phone) usually holds
// whole and could otherwise take a fresh address from for every request.
const (
	DefaultClientIPv4Prefix = 32
	DefaultClientIPv6Prefix = 64
)

// ClientKey returns the key per-client limits count a client under: the
// network of a cut to v4Bits (IPv4) or v6Bits (IPv6) bits, e.g.
// "203.0.113.7/32" or "2001:db8:1:2::/64". A prefix length of 0 or out of
// range means the default. Every per-client limit, over HTTP and over the
// WebSocket, keys on it, so that one client is one client everywhere. The
// zero Addr (a peer address that could not be read) is "unknown".
func ClientKey(a netip.Addr, v4Bits, v6Bits int) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = a.Unmap()
	bits := v6Bits
	if bits <= 0 || bits > 128 {
		bits = DefaultClientIPv6Prefix
	}
	if a.Is4() {
		bits = v4Bits
		if bits <= 0 || bits > 32 {
			bits = DefaultClientIPv4Prefix
		}
	}
	p, err := a.WithZone("").Prefix(bits)
	if err != nil {
		return "unknown"
	}
	return p.String()
}

// clientKey is ClientKey of r's client with the server's trusted proxies
// and prefix lengths.
func (s *Server) clientKey(r *http.Request) string {
	return ClientKey(ClientIP(r, s.TrustedProxies), s.ClientIPv4Prefix, s.ClientIPv6Prefix)
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
