package securitytest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pentecost/pentecost"
	pthttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/inmem"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/servertest"
)

// Attacks on the limits of issue 13 (items 1, 2 and 5, and the cap on one
// client's connections): refreshes that replaced nothing and so passed the
// listener cap and the join limit, IPv6 clients counted per address
// although each holds a /64, session IDs guessed at full speed, and no cap
// on the connections one client holds open.
//
// Every test poses as several clients through X-Forwarded-For from a
// trusted proxy (127.0.0.1), as the server behind nginx sees them; rate
// limits count on a frozen clock, so that a slow machine cannot see a
// window slide.

// limitsWait is how long a test waits for anything the server should do
// at once; only a hung server reaches it.
const limitsWait = 10 * time.Second

// limitsLoopback is the trusted proxy every test connects through.
var limitsLoopback = netip.MustParsePrefix("127.0.0.1/32")

// limitsEnv is a server whose clients are told apart by X-Forwarded-For.
type limitsEnv struct {
	*servertest.Server
	t       *testing.T
	limiter *inmem.RateLimiter // shared by the API and the WebSocket endpoint
	log     *limitsLog
}

// limitsStart starts a server trusting 127.0.0.1's X-Forwarded-For, with
// one frozen-clock rate limiter for the API and the WebSocket endpoint and
// every log record kept; opts adjust it further.
func limitsStart(t *testing.T, opts ...servertest.Option) *limitsEnv {
	t.Helper()
	e := &limitsEnv{t: t, limiter: inmem.NewRateLimiter(), log: &limitsLog{}}
	frozen := time.Now()
	e.limiter.Now = func() time.Time { return frozen }
	logger := slog.New(&limitsLogHandler{log: e.log})
	e.Server = servertest.Start(t, append([]servertest.Option{
		servertest.TrustedProxies(limitsLoopback),
		servertest.Configure(func(s *realtime.Server) {
			s.RateLimiter = e.limiter
			s.Logger = logger
		}),
		servertest.ConfigureAPI(func(a *pthttp.Server) {
			a.RateLimiter = e.limiter
			a.Logger = logger
		}),
	}, opts...)...)
	return e
}

// limitsMisses sets the limit of lookups of unknown sessions, over the
// WebSocket and the API alike (servertest gives the API the realtime
// server's Lookups, as pentecost serve does).
func limitsMisses(n int) []servertest.Option {
	l := pentecost.Limit{Events: n, Per: time.Minute}
	return []servertest.Option{servertest.Configure(func(s *realtime.Server) { s.SessionMissLimit = l })}
}

// limitsConn is a WebSocket client posing as the client at its address.
type limitsConn struct {
	t     testing.TB
	nc    net.Conn
	br    *bufio.Reader
	wmu   sync.Mutex
	in    chan map[string]any // closed when the connection ends
	close int                 // the server's close code, once in is closed
}

// limitsHandshake is the answer to a handshake the server refused before
// upgrading.
type limitsHandshake struct {
	status int
	header http.Header
	body   []byte
}

// tryDial opens a WebSocket from the client at from (an IP address) with
// query. It returns the connection, or the HTTP answer when the server
// did not upgrade.
func (e *limitsEnv) tryDial(from, query string) (*limitsConn, *limitsHandshake) {
	e.t.Helper()
	u, err := url.Parse(e.WSURL)
	if err != nil {
		e.t.Fatal(err)
	}
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = nc.Close() })
	br := bufio.NewReader(nc)
	req := "GET " + u.Path + "?" + query + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13" +
		"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Forwarded-For: " + from + "\r\n\r\n"
	_ = nc.SetDeadline(time.Now().Add(limitsWait))
	if _, err := io.WriteString(nc, req); err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		_ = nc.Close()
		return nil, &limitsHandshake{status: resp.StatusCode, header: resp.Header, body: body}
	}
	_ = nc.SetDeadline(time.Time{})
	c := &limitsConn{t: e.t, nc: nc, br: br, in: make(chan map[string]any, 256)}
	go c.read()
	return c, nil
}

// dial is tryDial for a handshake that must be upgraded.
func (e *limitsEnv) dial(from, query string) *limitsConn {
	e.t.Helper()
	c, refused := e.tryDial(from, query)
	if refused != nil {
		e.t.Fatalf("handshake from %s refused: %d %s", from, refused.status, refused.body)
	}
	return c
}

// listen joins sess as a listener in English from the client at from and
// returns the connection and its sessionJoined.
func (e *limitsEnv) listen(from string, sess *pentecost.Session) (*limitsConn, map[string]any) {
	e.t.Helper()
	c := e.dial(from, "sessionId="+sess.ID+"&targetLanguage=en")
	return c, c.expect("sessionJoined")
}

// refresh opens a listener refresh of sess from the client at from,
// presenting ticket when it is not empty.
func (e *limitsEnv) refresh(from string, sess *pentecost.Session, ticket string) *limitsConn {
	e.t.Helper()
	q := url.Values{"action": {"refreshConnection"}, "role": {"listener"}, "sessionId": {sess.ID}, "targetLanguage": {"en"}}
	if ticket != "" {
		q.Set("refreshTicket", ticket)
	}
	return e.dial(from, q.Encode())
}

// listeners is the session's listener count as presence has it.
func (e *limitsEnv) listeners(sess *pentecost.Session) int {
	e.t.Helper()
	c, err := e.Presence.Counts(context.Background(), sess.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.Total
}

// openListeners is how many listener connections the server holds open.
func (e *limitsEnv) openListeners() int {
	e.t.Helper()
	mfs, err := e.Registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pentecost_ws_connections" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "role" && l.GetValue() == "listener" {
					return int(m.GetGauge().GetValue())
				}
			}
		}
	}
	return 0
}

// get makes a GET request of the API from the client at from.
func (e *limitsEnv) get(from, path string) (int, http.Header, pthttp.ErrorResponse) {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", from)
	resp, err := (&http.Client{Timeout: limitsWait}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body pthttp.ErrorResponse
	if resp.StatusCode != http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			e.t.Fatalf("GET %s: %d without the JSON error: %v", path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, resp.Header, body
}

func (c *limitsConn) read() {
	defer close(c.in)
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return
		}
		data := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, data); err != nil {
			return
		}
		switch h.OpCode {
		case ws.OpClose:
			if len(data) >= 2 {
				c.close = int(binary.BigEndian.Uint16(data))
			}
			_ = c.write(ws.OpClose, data[:min(len(data), 2)])
			return
		case ws.OpPing:
			_ = c.write(ws.OpPong, data)
			continue
		case ws.OpText:
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				c.t.Errorf("server sent text that is not JSON: %q", data)
				return
			}
			c.in <- m
		}
	}
}

func (c *limitsConn) write(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return wsutil.WriteClientMessage(c.nc, op, p)
}

// expect skips messages until one of type typ; an error message on the way
// fails the test, unless typ is "error".
func (c *limitsConn) expect(typ string) map[string]any {
	c.t.Helper()
	deadline := time.After(limitsWait)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				c.t.Fatalf("connection closed (%d) while waiting for %q", c.close, typ)
			}
			if m["type"] == typ {
				return m
			}
			if m["type"] == "error" {
				c.t.Fatalf("error while waiting for %q: %v", typ, m)
			}
		case <-deadline:
			c.t.Fatalf("no %q within %s", typ, limitsWait)
		}
	}
}

// refused expects a join refusal: the error with code, then the close.
func (c *limitsConn) refused(code string, close int) {
	c.t.Helper()
	if m := c.expect("error"); m["code"] != code {
		c.t.Fatalf("refused with %v, want %s", m, code)
	}
	if got := c.closed(); got != close {
		c.t.Fatalf("closed with %d, want %d", got, close)
	}
}

// closed waits for the connection to end and returns the close code.
func (c *limitsConn) closed() int {
	c.t.Helper()
	deadline := time.After(limitsWait)
	for {
		select {
		case _, ok := <-c.in:
			if !ok {
				return c.close
			}
		case <-deadline:
			c.t.Fatalf("connection not closed within %s", limitsWait)
		}
	}
}

// leave closes the connection with 1000, as a client leaving does.
func (c *limitsConn) leave() {
	_ = c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	c.closed()
}

// limitsTicket returns the refreshTicket of a join reply.
func limitsTicket(t testing.TB, reply map[string]any) string {
	t.Helper()
	tk, _ := reply["refreshTicket"].(string)
	if tk == "" {
		t.Fatalf("reply without a refreshTicket: %v", reply)
	}
	return tk
}

// limitsForge returns variants of a real ticket that the server must not
// take for it: another connection or session named with the signature
// kept, the signature altered, and no signature.
func limitsForge(t testing.TB, ticket string) map[string]string {
	t.Helper()
	p64, mac, _ := strings.Cut(ticket, ".")
	payload, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		t.Fatalf("ticket payload: %v", err)
	}
	f := strings.Split(string(payload), "\n")
	if len(f) < 3 {
		t.Fatalf("ticket payload %q", payload)
	}
	other := append([]string(nil), f...)
	other[len(other)-1] = "c-0000000000000000" // another connection
	enc := func(fields []string) string {
		return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(fields, "\n")))
	}
	flipped := []byte(mac)
	flipped[0] ^= 'A' ^ 'B'
	if flipped[0] == mac[0] {
		flipped[0] = 'A'
	}
	return map[string]string{
		"OtherConnection": enc(other) + "." + mac,
		"AlteredMAC":      p64 + "." + string(flipped),
		"Unsigned":        p64,
		"Garbage":         "not-a-ticket",
	}
}

// TestAttack_RefreshPastTheCap: a refresh needed no connection to replace,
// so that 300 "refreshes" took a full session of 500 to 800. Now a refresh
// takes the place of a connection the client really has; with nothing to
// replace it is a join, refused at the cap. A forged ticket, a ticket of
// another session and a ticket already used replace nothing.
func TestAttack_RefreshPastTheCap(t *testing.T) {
	const max = 3
	e := limitsStart(t, servertest.Configure(func(s *realtime.Server) { s.MaxListeners = max }))
	sess := e.CreateSession("alice", "en")
	other := e.CreateSession("alice", "en")
	const honest, attacker = "203.0.113.10", "198.51.100.66"

	var tickets []string
	var conns []*limitsConn
	for range max {
		c, joined := e.listen(honest, sess)
		conns = append(conns, c)
		tickets = append(tickets, limitsTicket(t, joined))
	}
	_, otherJoined := e.listen(attacker, other)
	atCap := func(when string) {
		t.Helper()
		if n := e.listeners(sess); n != max {
			t.Fatalf("%s: %d listeners counted, want the cap %d", when, n, max)
		}
	}
	atCap("full")

	t.Run("WithoutTicket", func(t *testing.T) {
		// The attacker holds no connection to the session: each refresh
		// is a join, and the session is full.
		for i := range 10 {
			e.refresh(attacker, sess, "").refused(pentecost.ESESSIONFULL, realtime.CloseTryAgain)
			atCap(fmt.Sprintf("after refresh %d", i+1))
		}
	})
	t.Run("ForgedTicket", func(t *testing.T) {
		for name, forged := range limitsForge(t, tickets[0]) {
			t.Run(name, func(t *testing.T) {
				e.refresh(attacker, sess, forged).refused(pentecost.ESESSIONFULL, realtime.CloseTryAgain)
				atCap(name)
			})
		}
	})
	t.Run("OtherSessionsTicket", func(t *testing.T) {
		e.refresh(attacker, sess, limitsTicket(t, otherJoined)).refused(pentecost.ESESSIONFULL, realtime.CloseTryAgain)
		atCap("a ticket of another session")
	})
	t.Run("ReusedTicket", func(t *testing.T) {
		// The honest client refreshes its first connection: it may, at
		// the cap, since the new connection takes the old one's place.
		fresh := e.refresh(honest, sess, tickets[0])
		fresh.expect("connectionRefreshComplete")
		atCap("after the honest refresh")
		// The ticket, seen on the way (a proxy's log), is spent: before
		// and after the old connection closes.
		e.refresh(attacker, sess, tickets[0]).refused(pentecost.ESESSIONFULL, realtime.CloseTryAgain)
		conns[0].leave()
		servertest.Poll(t, limitsWait, "the old connection gone", func() bool { return e.openListeners() == max+1 })
		e.refresh(attacker, sess, tickets[0]).refused(pentecost.ESESSIONFULL, realtime.CloseTryAgain)
		atCap("after replaying a spent ticket")
	})
	// Every honest listener is still there, still counted.
	for _, c := range conns[1:] {
		_ = c.write(ws.OpText, []byte(`{"action":"heartbeat"}`))
		c.expect("heartbeatAck")
	}
	atCap("at the end")
}

// TestAttack_RefreshSkipsJoinLimit: refreshes were not counted as joins,
// so a client over its join limit joined on as "refreshes". Now a refresh
// that replaces none of the client's connections is a join, and counted;
// one that does replace a connection adds no listener, and passes.
func TestAttack_RefreshSkipsJoinLimit(t *testing.T) {
	const joins = 3
	e := limitsStart(t, servertest.Configure(func(s *realtime.Server) { s.JoinLimit = pentecost.Limit{Events: joins, Per: time.Minute} }))
	sess := e.CreateSession("alice", "en")
	other := e.CreateSession("alice", "en")
	const attacker = "198.51.100.7"
	var last map[string]any
	for range joins {
		_, last = e.listen(attacker, sess)
	}
	e.dial(attacker, "sessionId="+other.ID+"&targetLanguage=en").refused(pentecost.ERATELIMIT, realtime.ClosePolicy)

	// "Refreshes" of connections the client does not have: to another
	// session, in another language, with a ticket of another session or
	// a forged one. Each is a join, over the limit.
	for name, q := range map[string]url.Values{
		"OtherSession":  {"sessionId": {other.ID}, "targetLanguage": {"en"}},
		"OtherLanguage": {"sessionId": {sess.ID}, "targetLanguage": {"es"}},
		"OtherTicket":   {"sessionId": {other.ID}, "targetLanguage": {"en"}, "refreshTicket": {limitsTicket(t, last)}},
		"ForgedTicket":  {"sessionId": {other.ID}, "targetLanguage": {"en"}, "refreshTicket": {limitsForge(t, limitsTicket(t, last))["AlteredMAC"]}},
	} {
		t.Run(name, func(t *testing.T) {
			q.Set("action", "refreshConnection")
			q.Set("role", "listener")
			for range 5 {
				c := e.dial(attacker, q.Encode())
				m := c.expect("error")
				if m["code"] != pentecost.ERATELIMIT || m["retryAfter"] == nil {
					t.Fatalf("refresh over the join limit: %v", m)
				}
				if code := c.closed(); code != realtime.ClosePolicy {
					t.Fatalf("closed with %d, want %d", code, realtime.ClosePolicy)
				}
			}
		})
	}
	if n := e.listeners(other); n != 0 {
		t.Fatalf("%d listeners of the other session, want none", n)
	}
	// A refresh of a connection it really has is a join too: over the
	// limit it is refused, and the connection it would have replaced
	// stays counted.
	r := e.refresh(attacker, sess, "")
	if m := r.expect("error"); m["code"] != pentecost.ERATELIMIT {
		t.Fatalf("refresh of a real connection over the join limit: %v", m)
	}
	if n := e.listeners(sess); n != joins {
		t.Fatalf("%d listeners counted, want %d", n, joins)
	}
	// Another client is not held back, and may refresh what it has.
	_, m := e.listen("198.51.100.8", other)
	e.refresh("198.51.100.8", other, limitsTicket(t, m)).expect("connectionRefreshComplete")
	if n := e.listeners(other); n != 1 {
		t.Fatalf("%d listeners of the other session after its refresh, want 1", n)
	}
}

// TestAttack_IPv6SlashSixtyFourJoins: limits keyed on the full address, so
// one IPv6 /64 (one subscriber) had 40 of 40 joins accepted under a limit
// of 10. Now a /64 is one client, over HTTP and WebSocket alike.
func TestAttack_IPv6SlashSixtyFourJoins(t *testing.T) {
	t.Run("ClientKey", func(t *testing.T) {
		for _, tt := range []struct {
			addr           string
			v4, v6         int
			want           string
			sameAs, differ string
		}{
			{addr: "2001:db8:1:2::1", want: "2001:db8:1:2::/64", sameAs: "2001:db8:1:2:ffff:ffff:ffff:ffff", differ: "2001:db8:1:3::1"},
			{addr: "203.0.113.7", want: "203.0.113.7/32", differ: "203.0.113.8"},
			{addr: "::ffff:203.0.113.7", want: "203.0.113.7/32", sameAs: "203.0.113.7"},
			{addr: "fe80::1%eth0", want: "fe80::/64", sameAs: "fe80::2"},
			{addr: "2001:db8:1:2::1", v6: 48, want: "2001:db8:1::/48", sameAs: "2001:db8:1:ff::1"},
			{addr: "203.0.113.7", v4: 24, want: "203.0.113.0/24", sameAs: "203.0.113.200"},
			{addr: "203.0.113.7", v4: 99, v6: -1, want: "203.0.113.7/32"}, // out of range: the default
			{addr: "", want: "unknown"},
		} {
			var a netip.Addr
			if tt.addr != "" {
				a = netip.MustParseAddr(tt.addr)
			}
			key := func(a netip.Addr) string { return pthttp.ClientKey(a, tt.v4, tt.v6) }
			if got := key(a); got != tt.want {
				t.Errorf("ClientKey(%s, %d, %d) = %q, want %q", tt.addr, tt.v4, tt.v6, got, tt.want)
			}
			if tt.sameAs != "" && key(netip.MustParseAddr(tt.sameAs)) != tt.want {
				t.Errorf("%s is not the same client as %s", tt.sameAs, tt.addr)
			}
			if tt.differ != "" && key(netip.MustParseAddr(tt.differ)) == tt.want {
				t.Errorf("%s is the same client as %s", tt.differ, tt.addr)
			}
		}
	})

	t.Run("Joins", func(t *testing.T) {
		const limit = 10
		e := limitsStart(t, servertest.Configure(func(s *realtime.Server) { s.JoinLimit = pentecost.Limit{Events: limit, Per: time.Minute} }))
		sess := e.CreateSession("alice", "en")
		accepted := 0
		for i := range 40 {
			c := e.dial(fmt.Sprintf("2001:db8:1:2::%x", i+1), "sessionId="+sess.ID+"&targetLanguage=en")
			m := c.expect2("sessionJoined", "error")
			switch {
			case m["type"] == "sessionJoined":
				accepted++
			case m["code"] != pentecost.ERATELIMIT:
				t.Fatalf("join %d: %v", i, m)
			}
		}
		if accepted != limit {
			t.Fatalf("%d of 40 joins from one /64 accepted, want %d", accepted, limit)
		}
		// The next /64 is another client.
		e.listen("2001:db8:1:3::1", sess)
	})

	t.Run("SharedWithHTTP", func(t *testing.T) {
		// Lookups of unknown sessions from two addresses of one /64 count
		// together, over the API and the WebSocket.
		const misses = 4
		e := limitsStart(t, limitsMisses(misses)...)
		for i := range misses / 2 {
			if status, _, _ := e.get("2001:db8:9:9::a", "/sessions/"+limitsRandomID(i)); status != http.StatusNotFound {
				t.Fatalf("miss %d: %d", i, status)
			}
			e.dial("2001:db8:9:9::b", "sessionId="+limitsRandomID(100+i)+"&targetLanguage=en").refused(pentecost.ESESSIONNOTFOUND, realtime.ClosePolicy)
		}
		if status, _, body := e.get("2001:db8:9:9::c", "/sessions/"+limitsRandomID(99)); status != http.StatusTooManyRequests || body.Code != pentecost.ERATELIMIT {
			t.Fatalf("miss over the limit from the same /64: %d %s", status, body.Code)
		}
	})
}

// expect2 returns the next message of type a or b.
func (c *limitsConn) expect2(a, b string) map[string]any {
	c.t.Helper()
	deadline := time.After(limitsWait)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				c.t.Fatalf("connection closed (%d) while waiting for %q or %q", c.close, a, b)
			}
			if m["type"] == a || m["type"] == b {
				return m
			}
		case <-deadline:
			c.t.Fatalf("no %q or %q within %s", a, b, limitsWait)
		}
	}
}

// limitsRandomID returns a session ID of the right shape that no session
// has: random letters, as a guesser would try.
func limitsRandomID(seed int) string {
	r := rand.New(rand.NewPCG(uint64(seed), 42))
	word := func() string {
		b := make([]byte, 6)
		for i := range b {
			b[i] = byte('a' + r.IntN(26))
		}
		return string(b)
	}
	return fmt.Sprintf("%s-%s-%d", word(), word(), 100+r.IntN(900))
}

// TestAttack_ConcurrentConnectionsPerClient: nothing capped how many
// connections one client held open, only how fast it opened them. Now a
// client (here one IPv6 /64) holding MaxConnsPerClient connections is
// refused more with 429 before the upgrade, while others carry on.
func TestAttack_ConcurrentConnectionsPerClient(t *testing.T) {
	const max = 5
	e := limitsStart(t, servertest.Configure(func(s *realtime.Server) { s.MaxConnsPerClient = max }))
	sess := e.CreateSession("alice", "en")
	query := "sessionId=" + sess.ID + "&targetLanguage=en"
	addr := func(i int) string { return fmt.Sprintf("2001:db8:5:5::%x", i+1) } // one /64
	var held []*limitsConn
	var last map[string]any
	for i := range max {
		c, joined := e.listen(addr(i), sess)
		held, last = append(held, c), joined
	}
	for i := range 20 {
		c, refused := e.tryDial(addr(max+i), query)
		if refused == nil {
			c.leave()
			t.Fatalf("connection %d of one client upgraded, over the cap of %d", max+i+1, max)
		}
		var body pthttp.ErrorResponse
		if err := json.Unmarshal(refused.body, &body); err != nil || refused.status != http.StatusTooManyRequests ||
			body.Type != "error" || body.Code != pentecost.ERATELIMIT || refused.header.Get("Retry-After") == "" || body.RetryAfter < 1 {
			t.Fatalf("over the cap: %d %v %s %q, want 429 RATE_LIMIT_EXCEEDED with Retry-After", refused.status, refused.header, refused.body, err)
		}
	}
	// A speaker's connection counts too.
	if _, refused := e.tryDial(addr(99), "sessionId="+sess.ID+"&token="+url.QueryEscape(e.Token("alice"))); refused == nil || refused.status != http.StatusTooManyRequests {
		t.Fatalf("speaker over the cap: %+v", refused)
	}
	// Another client is not held back.
	e.listen("2001:db8:5:6::1", sess)
	// At the cap a refresh still goes through: its old connection is
	// about to close.
	fresh := e.refresh(addr(0), sess, limitsTicket(t, last))
	fresh.expect("connectionRefreshComplete")
	held[max-1].leave()
	held[0].leave()
	// One connection fewer than the cap: one more opens again.
	servertest.Poll(t, limitsWait, "the client under its cap again", func() bool {
		c, refused := e.tryDial(addr(200), query)
		if refused != nil {
			return false
		}
		c.expect("sessionJoined")
		return true
	})
}

// TestAttack_SessionIDGuessing: 39,155 lookups of random session IDs in
// 10 s from one address met no limit, and each wrote an info log line.
// Now a client's lookups of IDs that do not exist are limited; over the
// limit it is refused every lookup, also of a session that exists, over
// the API and the WebSocket, while other clients carry on; and misses and
// refusals are logged at debug level only.
func TestAttack_SessionIDGuessing(t *testing.T) {
	const misses = 10
	e := limitsStart(t, limitsMisses(misses)...)
	sess := e.CreateSession("alice", "en")
	const guesser, wsGuesser, listener = "203.0.113.50", "192.0.2.77", "198.51.100.50"

	notFound, limited := 0, 0
	for i := range 100 {
		status, h, body := e.get(guesser, "/sessions/"+limitsRandomID(i))
		switch {
		case status == http.StatusNotFound && body.Code == pentecost.ESESSIONNOTFOUND && limited == 0:
			notFound++
		case status == http.StatusTooManyRequests && body.Code == pentecost.ERATELIMIT && h.Get("Retry-After") != "" && body.RetryAfter >= 1:
			limited++
		default:
			t.Fatalf("lookup %d (%d misses, %d refused before): %d %+v", i, notFound, limited, status, body)
		}
	}
	if notFound != misses || limited != 100-misses {
		t.Fatalf("%d misses answered, %d refused; want %d and %d", notFound, limited, misses, 100-misses)
	}
	// Over the limit, a session that exists is refused as well: "refused"
	// against "found" would still answer the guesses.
	for _, path := range []string{"/sessions/" + sess.ID, "/sessions/" + sess.ID + "/languages"} {
		if status, _, body := e.get(guesser, path); status != http.StatusTooManyRequests || body.Code != pentecost.ERATELIMIT {
			t.Fatalf("GET %s over the limit: %d %s", path, status, body.Code)
		}
	}
	// The WebSocket counts the same misses.
	e.dial(guesser, "sessionId="+limitsRandomID(1000)+"&targetLanguage=en").refused(pentecost.ERATELIMIT, realtime.ClosePolicy)
	e.dial(guesser, "sessionId="+sess.ID+"&targetLanguage=en").refused(pentecost.ERATELIMIT, realtime.ClosePolicy)

	// Guessing over the WebSocket alone meets the same limit.
	for i := range misses {
		e.dial(wsGuesser, "sessionId="+limitsRandomID(2000+i)+"&targetLanguage=en").refused(pentecost.ESESSIONNOTFOUND, realtime.ClosePolicy)
	}
	e.dial(wsGuesser, "sessionId="+limitsRandomID(3000)+"&targetLanguage=en").refused(pentecost.ERATELIMIT, realtime.ClosePolicy)
	e.dial(wsGuesser, "sessionId="+sess.ID+"&targetLanguage=en").refused(pentecost.ERATELIMIT, realtime.ClosePolicy)
	if status, _, _ := e.get(wsGuesser, "/sessions/"+sess.ID); status != http.StatusTooManyRequests {
		t.Fatalf("GET over the limit reached on the WebSocket: %d", status)
	}

	// Everyone else carries on, and lookups that find a session are not
	// counted: a venue's phones all look up the one code that exists.
	for i := range 3 * misses {
		if status, _, body := e.get(listener, "/sessions/"+sess.ID); status != http.StatusOK {
			t.Fatalf("lookup %d of a session that exists: %d %s", i, status, body.Code)
		}
	}
	e.listen(listener, sess)

	// Logged at debug level: one line per lookup and join, none at info.
	guessers := map[string]bool{"203.0.113.0/24": true, "192.0.2.0/24": true}
	const lines = 100 + 2 + 2 + misses + 2 + 1 // lookups and joins of the guessers
	servertest.Poll(t, limitsWait, "every request logged", func() bool {
		n := 0
		for _, r := range e.log.all() {
			if r.msg == "http request" && guessers[r.attrs["client_net"]] {
				n++
			}
		}
		return n == lines
	})
	for _, r := range e.log.all() {
		if guessers[r.attrs["client_net"]] && r.level >= slog.LevelInfo {
			t.Errorf("logged at %s for a guesser: %s %v", r.level, r.msg, r.attrs)
		}
	}
}

// TestRefresh_TicketHandsOverAtTheCap: the honest refresh. At the cap, a
// listener's and the speaker's refresh with their tickets take their old
// connections' places; each new connection gets a ticket of its own; an
// old connection its client keeps open is closed by the server (4002)
// after the handover, so that nobody holds connections uncounted.
func TestRefresh_TicketHandsOverAtTheCap(t *testing.T) {
	const max = 2
	e := limitsStart(t, servertest.Configure(func(s *realtime.Server) {
		s.MaxListeners = max
		s.RefreshHandover = 100 * time.Millisecond
	}))
	sess := e.CreateSession("alice", "en")
	const home = "203.0.113.20"
	sp := e.dial(home, "sessionId="+sess.ID+"&token="+url.QueryEscape(e.Token("alice")))
	spTicket := limitsTicket(t, sp.expect("speakerConnected"))
	a, joined := e.listen(home, sess)
	e.listen(home, sess)

	fresh := e.refresh(home, sess, limitsTicket(t, joined))
	done := fresh.expect("connectionRefreshComplete")
	next := limitsTicket(t, done)
	if next == limitsTicket(t, joined) {
		t.Fatal("the refresh connection got the old connection's ticket")
	}
	if n := e.listeners(sess); n != max {
		t.Fatalf("%d listeners counted after the refresh, want %d", n, max)
	}
	// The client keeps its old connection open: the server closes it.
	if code := a.closed(); code != realtime.CloseMaxDuration {
		t.Fatalf("replaced connection closed with %d, want %d", code, realtime.CloseMaxDuration)
	}
	servertest.Poll(t, limitsWait, "two listener connections", func() bool { return e.openListeners() == max })

	// The new connection refreshes in turn, with its own ticket.
	again := e.refresh(home, sess, next)
	again.expect("connectionRefreshComplete")
	fresh.leave()
	servertest.Poll(t, limitsWait, "two listener connections", func() bool { return e.openListeners() == max })
	if n := e.listeners(sess); n != max {
		t.Fatalf("%d listeners counted after two refreshes, want %d", n, max)
	}

	// The speaker refreshes with its ticket too, and is heard on the new
	// connection; its old one, kept open, is closed the same way.
	sp2 := e.dial(home, url.Values{"action": {"refreshConnection"}, "role": {"speaker"}, "sessionId": {sess.ID},
		"token": {e.Token("alice")}, "refreshTicket": {spTicket}}.Encode())
	limitsTicket(t, sp2.expect("connectionRefreshComplete"))
	if code := sp.closed(); code != realtime.CloseMaxDuration {
		t.Fatalf("replaced speaker connection closed with %d, want %d", code, realtime.CloseMaxDuration)
	}
	if err := sp2.write(ws.OpBinary, make([]byte, 640)); err != nil {
		t.Fatal(err)
	}
	again.expect("audioData")
}

// TestRefresh_OriginalClientWithoutTicket: the original system's clients
// refresh without a ticket. Such a refresh replaces the same client's
// oldest connection to the session in that language, so it works at the
// cap and the count stays at the cap once the old connection has closed.
func TestRefresh_OriginalClientWithoutTicket(t *testing.T) {
	e := limitsStart(t, servertest.Configure(func(s *realtime.Server) { s.MaxListeners = 1 }))
	sess := e.CreateSession("alice", "en")
	const venue, stranger = "203.0.113.30", "198.51.100.30"
	sp := e.dial(venue, "sessionId="+sess.ID+"&token="+url.QueryEscape(e.Token("alice")))
	sp.expect("speakerConnected")
	old := e.dial(venue, url.Values{"action": {"joinSession"}, "sessionId": {sess.ID}, "targetLanguage": {"en"}}.Encode())
	old.expect("sessionJoined")
	// The reply goes out just before the server marks the connection
	// joined, and only a joined connection is there to be replaced.
	servertest.Poll(t, limitsWait, "the old connection joined", func() bool { return e.openListeners() == 1 })

	fresh := e.refresh(venue, sess, "")
	fresh.expect("connectionRefreshComplete")
	old.leave()
	servertest.Poll(t, limitsWait, "the old connection gone", func() bool { return e.openListeners() == 1 })
	if n := e.listeners(sess); n != 1 {
		t.Fatalf("%d listeners counted after the refresh, want 1", n)
	}
	// Someone else's refresh replaces nothing of theirs: the session is full.
	e.refresh(stranger, sess, "").refused(pentecost.ESESSIONFULL, realtime.CloseTryAgain)
	// The speaker's refresh without a ticket works as it always did.
	sp2 := e.dial(venue, url.Values{"action": {"refreshConnection"}, "role": {"speaker"}, "sessionId": {sess.ID},
		"token": {e.Token("alice")}}.Encode())
	sp2.expect("connectionRefreshComplete")
	sp.leave()
	if err := sp2.write(ws.OpBinary, make([]byte, 640)); err != nil {
		t.Fatal(err)
	}
	fresh.expect("audioData")
}

// limitsLog keeps every log record of a server.
type limitsLog struct {
	mu   sync.Mutex
	recs []limitsRecord
}

type limitsRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (l *limitsLog) all() []limitsRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]limitsRecord(nil), l.recs...)
}

// limitsLogHandler is a slog.Handler into a limitsLog, at every level.
type limitsLogHandler struct {
	log   *limitsLog
	attrs []slog.Attr
}

func (h *limitsLogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *limitsLogHandler) Handle(_ context.Context, r slog.Record) error {
	rec := limitsRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.log.mu.Lock()
	h.log.recs = append(h.log.recs, rec)
	h.log.mu.Unlock()
	return nil
}

func (h *limitsLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &limitsLogHandler{log: h.log, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *limitsLogHandler) WithGroup(string) slog.Handler { return h }
