package realtime

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// A refresh ticket proves that a refresh replaces a connection the client
// really has. Every listener and speaker connection gets one in the reply
// to its join (refreshTicket), and presents it when it refreshes
// (refreshTicket=… in the refresh URL). It names the connection, its
// session and role, and when it expires, signed with TicketKey, which
// every node sharing Redis shares, so a refresh that lands on another node
// is verified there. It is good once: the refresh replaces the named
// connection's presence entry (Presence.Replace), which then is gone.
//
// Format: base64url(payload) "." base64url(HMAC-SHA256(key, payload)[:16]),
// payload = "1" LF role LF expiry (Unix seconds) LF session ID LF connection ID.
// Clients treat it as opaque.

// ticketTTL is how long a ticket is good for. Its connection bounds it
// anyway (a ticket is good once, while its connection is counted); this
// bounds a copy that leaked, e.g. into a proxy's log.
const ticketTTL = 24 * time.Hour

// ticketMACLen is the signature's length: 128 bits is far beyond guessing.
const ticketMACLen = 16

// ticket is what a verified refresh ticket names.
type ticket struct {
	role      role
	sessionID string
	connID    string
}

// issueTicket returns c's refresh ticket for its session.
func (s *Server) issueTicket(c *conn, sessionID string) string {
	exp := s.Now().Add(ticketTTL).Unix()
	payload := "1\n" + c.role.String() + "\n" + strconv.FormatInt(exp, 10) + "\n" + sessionID + "\n" + c.id
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(s.ticketMAC([]byte(payload)))
}

// verifyTicket returns what a ticket names, or false when it is not one
// of ours (forged, altered, signed with another key) or has expired.
func (s *Server) verifyTicket(tok string) (ticket, bool) {
	if tok == "" || len(tok) > 512 {
		return ticket{}, false
	}
	p64, m64, ok := strings.Cut(tok, ".")
	if !ok {
		return ticket{}, false
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p64)
	mac, err2 := enc.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, s.ticketMAC(payload)) {
		return ticket{}, false
	}
	f := strings.Split(string(payload), "\n")
	if len(f) != 5 || f[0] != "1" || f[3] == "" || f[4] == "" {
		return ticket{}, false
	}
	exp, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || s.Now().Unix() > exp {
		return ticket{}, false
	}
	t := ticket{sessionID: f[3], connID: f[4]}
	switch f[1] {
	case roleListener.String():
		t.role = roleListener
	case roleSpeaker.String():
		t.role = roleSpeaker
	default:
		return ticket{}, false
	}
	return t, true
}

func (s *Server) ticketMAC(payload []byte) []byte {
	h := hmac.New(sha256.New, s.TicketKey)
	h.Write([]byte("pentecost refresh ticket\n"))
	h.Write(payload)
	return h.Sum(nil)[:ticketMACLen]
}

// DeriveTicketKey returns a TicketKey derived from a secret every node
// sharing Redis has (the token signing key's seed), so that nodes agree on
// it, also after a restart, with nothing more to configure. Knowing it
// reveals nothing of the secret.
func DeriveTicketKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("pentecost refresh ticket key v1"))
	return m.Sum(nil)
}

// newTicketKey is the key of a server given none: tickets then hold on
// this node until it restarts, which is all one node needs (its
// connections do not outlive it either).
func newTicketKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}
