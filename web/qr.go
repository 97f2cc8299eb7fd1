package web

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/skip2/go-qrcode"

	"github.com/pentecost/pentecost"
	pthttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/sessionid"
)

// serveQR answers /qr/{sessionId}.svg with a QR code of the session's
// listener link. The session need not exist: the code only encodes a URL,
// and not asking the store keeps this cheap. A malformed ID gets the API's
// INVALID_SESSION_ID error.
//
// The link starts with the first of the listener bases (listenerBases),
// or the one ?base=N (its index) or ?host=ADDR (its host, port optional)
// names; a base or host that is not one of them gets 400
// VALIDATION_INVALID_FIELD, so no client can have a QR code made of a URL
// of its own.
func (h *Handler) serveQR(w http.ResponseWriter, r *http.Request) {
	h.init()
	file := r.PathValue("file")
	raw, ok := strings.CutSuffix(file, ".svg")
	if !ok {
		pthttp.Error(w, r, pentecost.Errorf(pentecost.ENOTFOUND, "Not found."))
		return
	}
	id, err := sessionid.Normalize(raw)
	if err != nil {
		pthttp.Error(w, r, err)
		return
	}
	// Without PublicURL the link is built from the Host header, which the
	// client chooses: one too long to be a host name is refused here
	// rather than failing the encoder (an internal error) further on.
	if h.PublicURL == "" && len(r.Host) > maxHostLen {
		pthttp.Error(w, r, &pentecost.Error{Code: pentecost.EVALIDATIONFIELD,
			Message: "The Host header is too long to be a server name.", Details: map[string]string{"field": "Host"}})
		return
	}
	base, err := pickBase(h.listenerBases(r), r.URL.Query())
	if err != nil {
		pthttp.Error(w, r, err)
		return
	}
	svg, err := qrSVG(base + "/listen/" + id)
	if err != nil {
		pthttp.Error(w, r, err)
		return
	}
	setSecurityHeaders(w, r, h.PublicURL)
	if h.PublicURL != "" {
		hd := w.Header()
		hd.Set("Content-Type", "image/svg+xml")
		hd.Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(svg)
		return
	}
	// The link depends on the Host the request came in with and on this
	// machine's addresses, which change when the laptop changes networks:
	// revalidate every time (a 304 by ETag), and keep shared caches from
	// handing one client's code to another.
	w.Header().Add("Vary", "Host")
	newAsset("qr.svg", svg).serve(w, r)
}

// maxHostLen is the longest Host a listener link is built from: a DNS name
// (253) with a port.
const maxHostLen = 253 + len(":65535")

// qrSVG renders text as a QR code in SVG: one path of dark modules on a
// white square, quiet zone included, scalable to any size.
func qrSVG(text string) ([]byte, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return nil, fmt.Errorf("qr code: %w", err)
	}
	bits := q.Bitmap() // includes the four-module quiet zone
	n := len(bits)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges">`, n, n)
	b.WriteString(`<title>QR code of the listener link</title>`)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`, n, n)
	b.WriteString(`<path fill="#000" d="`)
	for y, row := range bits {
		for x := 0; x < len(row); {
			if !row[x] {
				x++
				continue
			}
			start := x
			for x < len(row) && row[x] {
				x++
			}
			// One rectangle per horizontal run of dark modules.
			fmt.Fprintf(&b, "M%d %dh%dv1h-%dz", start, y, x-start, x-start)
		}
	}
	b.WriteString(`"/></svg>`)
	return []byte(b.String()), nil
}
