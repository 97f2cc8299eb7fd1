package web

import (
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pentecost/pentecost"
)

// FuzzListenerLinks builds the listener links of a request with any Host,
// peer address and query (?base=, ?host=), on a machine with three LAN
// addresses: there is always a link; a client that is not on this machine
// or a local network, or came through a proxy, learns no LAN address;
// and the link chosen is one of the candidates, never a URL of the
// client's, or the choice is refused with VALIDATION_INVALID_FIELD. The
// corpus is in testdata/fuzz.
func FuzzListenerLinks(f *testing.F) {
	lanAddrs := []netip.Addr{netip.MustParseAddr("192.168.1.20"), netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("fd00::2")}
	h := &Handler{LANAddrs: func() ([]netip.Addr, error) { return lanAddrs, nil }, Logger: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, host, remote, rawQuery string, forwarded bool) {
		r := &http.Request{Host: host, RemoteAddr: remote, Header: http.Header{}, URL: &url.URL{Path: "/qr/x.svg", RawQuery: rawQuery}}
		if forwarded {
			r.Header.Set("X-Forwarded-For", "203.0.113.9")
		}
		bases := h.listenerBases(r)
		if len(bases) == 0 {
			t.Fatal("no listener base")
		}
		for _, b := range bases {
			if !strings.HasPrefix(b, "http://") && !strings.HasPrefix(b, "https://") {
				t.Fatalf("base %q", b)
			}
		}
		peer, err := netip.ParseAddrPort(remote)
		local := err == nil && !forwarded && (peer.Addr().Unmap().IsLoopback() || peer.Addr().Unmap().IsPrivate() || peer.Addr().Unmap().IsLinkLocalUnicast())
		if !local && len(bases) != 1 {
			t.Fatalf("a client at %q (forwarded: %v) is offered %q", remote, forwarded, bases)
		}

		q := r.URL.Query()
		got, err := pickBase(bases, q)
		if err != nil {
			if pentecost.ErrorCode(err) != pentecost.EVALIDATIONFIELD {
				t.Fatalf("pickBase error %v", err)
			}
			return
		}
		if !slices.Contains(bases, got) {
			t.Fatalf("pickBase chose %q, not one of %q", got, bases)
		}
		switch {
		case q.Has("base") && q.Has("host"):
			t.Fatalf("pickBase took base and host together: %q", rawQuery)
		case q.Has("base"):
			if n, err := strconv.Atoi(q.Get("base")); err != nil || bases[n] != got {
				t.Fatalf("?base=%q chose %q of %q", q.Get("base"), got, bases)
			}
		case !q.Has("host") && got != bases[0]:
			t.Fatalf("no choice, yet %q of %q", got, bases)
		}
	})
}
