package web

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/lan"
)

// listenerBases returns the base URLs a listener link may start with for
// a page requested with r, the default first:
//
//   - PublicURL alone, when it is set;
//   - when the request's host is a loopback name or address (localhost,
//     127.0.0.0/8, ::1), which no phone can open, this machine's LAN
//     addresses (lan.Addrs order), or the request's own host when there
//     are none;
//   - when the host is one of those LAN addresses, that one first and the
//     others after it, so the speaker can pick the network the room is on;
//   - otherwise (a name, or an address behind a proxy) the request's host
//     only: strangers on the internet do not learn the LAN addresses;
//   - and the request's host only, too, whatever it is, for a client that
//     is not on this machine or a local network, or that came through a
//     proxy (X-Forwarded-For, Forwarded): Host is the client's to choose.
//
// The port is the request's, and the scheme http or https as it came in,
// unless ListenerPort is set: then always http and that port.
func (h *Handler) listenerBases(r *http.Request) []string {
	if h.PublicURL != "" {
		return []string{strings.TrimSuffix(h.PublicURL, "/")}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host, port := splitHost(r.Host)
	if h.ListenerPort > 0 {
		scheme, port = "http", strconv.Itoa(h.ListenerPort)
	}
	own := joinBase(scheme, host, port)
	ip, isIP := parseIP(host)
	loopback := isIP && ip.IsLoopback() || isLoopbackName(host)
	if !loopback && !isIP || !localClient(r) {
		// The Host header is the client's to choose: this machine's
		// addresses go only to clients on it or on its local networks.
		return []string{own}
	}
	addrs := h.lanAddrs()
	var out []string
	if !loopback {
		found := false
		for _, a := range addrs {
			found = found || a == ip
		}
		if !found {
			return []string{own}
		}
		out = append(out, own)
	}
	for _, a := range addrs {
		if a != ip {
			out = append(out, joinBase(scheme, a.String(), port))
		}
	}
	if len(out) == 0 {
		out = append(out, own)
	}
	return out
}

// pickBase chooses among bases (listenerBases) by the query of a QR code
// request: ?base=N (an index into bases) or ?host=ADDR (the host, with or
// without the port, of one of them). Anything that is not one of the
// candidates is refused with EVALIDATIONFIELD: a QR code is never made of
// a URL the client supplied.
func pickBase(bases []string, q url.Values) (string, error) {
	invalid := func(field, msg string) error {
		return &pentecost.Error{Code: pentecost.EVALIDATIONFIELD, Message: msg, Details: map[string]string{"field": field}}
	}
	switch {
	case q.Has("base") && q.Has("host"):
		return "", invalid("base", "Give base or host, not both.")
	case q.Has("base"):
		n, err := strconv.Atoi(q.Get("base"))
		if err != nil || n < 0 || n >= len(bases) {
			return "", invalid("base", "base must be the number of one of the listener addresses the speaker page offers, from 0 to "+strconv.Itoa(len(bases)-1)+".")
		}
		return bases[n], nil
	case q.Has("host"):
		want := q.Get("host")
		wantIP, wantIsIP := parseIP(strings.TrimSuffix(strings.TrimPrefix(want, "["), "]"))
		for _, b := range bases {
			u, err := url.Parse(b)
			if err != nil {
				continue
			}
			if strings.EqualFold(want, u.Host) || strings.EqualFold(want, u.Hostname()) {
				return b, nil
			}
			if ip, ok := parseIP(u.Hostname()); ok && wantIsIP && ip == wantIP {
				return b, nil
			}
		}
		return "", invalid("host", "host must be one of the listener addresses the speaker page offers.")
	}
	return bases[0], nil
}

// lanAddrs returns this machine's LAN addresses, none if they cannot be
// read.
func (h *Handler) lanAddrs() []netip.Addr {
	read := h.LANAddrs
	if read == nil {
		read = lan.MachineAddrs
	}
	addrs, err := read()
	if err != nil {
		h.Logger.Warn("cannot read the network interfaces for listener links", logKeyError, err)
		return nil
	}
	return addrs
}

// splitHost splits a Host header into host (IPv6 without brackets) and
// port ("" when it has none).
func splitHost(hostport string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), ""
}

// joinBase returns scheme://host[:port], bracketing an IPv6 host.
func joinBase(scheme, host, port string) string {
	if port == "" {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// parseIP reads host as an IP address, without a zone.
func parseIP(host string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// localClient reports whether r came straight from this machine or a
// device on a local network (loopback, private or link-local address),
// not through a proxy, which may be forwarding anyone from the internet.
func localClient(r *http.Request) bool {
	if r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "" {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast()
}

// isLoopbackName reports whether host is localhost or a name under it
// (RFC 6761: browsers resolve *.localhost to loopback themselves).
func isLoopbackName(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}
