package securitytest

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	pthttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/servertest"
	"github.com/pentecost/pentecost/sqlite"
)

const (
	// accountCheckInterval is how often the test server checks live
	// speakers' tokens (the default is realtime.DefaultAccountCheckInterval).
	accountCheckInterval = 100 * time.Millisecond
	// accountBound is how long a refused token may stay connected: one
	// check interval, and slack for a loaded machine.
	accountBound = 5 * time.Second
	// accountWait is how long anything else may take.
	accountWait = 5 * time.Second
	// accountAfter numbers the chunks an attacker sends after its close.
	accountAfter = 1000
)

// accountParams hash passwords cheaply: the tests are about tokens.
var accountParams = auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLength: 16, KeyLength: 32}

// accountEnv is a server whose speakers are embedded accounts in SQLite,
// wired as `pentecost serve` wires them: the issuer looks every token's
// account up, for HTTP and WebSocket alike.
type accountEnv struct {
	t   *testing.T
	srv *servertest.Server
	// accounts is the service `pentecost users` runs.
	accounts *auth.Accounts
	key      ed25519.PrivateKey
	// ahead moves the verifying issuer's clock forward (nanoseconds).
	ahead atomic.Int64
	// storeAhead moves the accounts store's clock (nanoseconds).
	storeAhead atomic.Int64
}

func accountStart(t *testing.T) *accountEnv {
	t.Helper()
	e := &accountEnv{t: t}
	dir := t.TempDir()
	db := sqlite.NewDB(filepath.Join(dir, "accounts.db"))
	db.Now = func() time.Time { return time.Now().Add(time.Duration(e.storeAhead.Load())) }
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	users := sqlite.NewUserStore(db)
	e.accounts = auth.NewAccounts(users)
	e.accounts.Params = accountParams

	key, err := auth.LoadOrCreateKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	e.key = key
	issuer := auth.NewEmbedded(key)
	issuer.Users = users
	issuer.Now = func() time.Time { return time.Now().Add(time.Duration(e.ahead.Load())) }
	v := auth.NewVerifier(issuer)
	e.srv = servertest.Start(t,
		servertest.Configure(func(s *realtime.Server) {
			s.Verifier = v
			s.AccountCheckInterval = accountCheckInterval
		}),
		servertest.ConfigureAPI(func(s *pthttp.Server) { s.Verifier = v }))
	return e
}

// addAccount creates an account a minute ago, so that the tokens of the
// tests, issued since, are its and a password change now is later than
// them: tokens carry their issue time in whole seconds, and one from the
// very second of a change survives it.
func (e *accountEnv) addAccount(name string) {
	e.t.Helper()
	e.storeAhead.Store(int64(-time.Minute))
	defer e.storeAhead.Store(0)
	if _, err := e.accounts.Add(context.Background(), name, "correct horse battery staple"); err != nil {
		e.t.Fatal(err)
	}
}

// token mints a token for name as sign-in would, issued at the given time
// and valid for ttl.
func (e *accountEnv) token(name string, issued time.Time, ttl time.Duration) string {
	e.t.Helper()
	minter := auth.NewEmbedded(e.key)
	minter.Now = func() time.Time { return issued }
	tok, err := minter.IssueToken(context.Background(), &pentecost.User{ID: name, Name: name}, ttl)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// httpStatus is the status of GET /sessions with token.
func (e *accountEnv) httpStatus(token string) int {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/sessions", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: accountWait}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// accountMsg is one message a test connection received.
type accountMsg struct {
	typ string
	m   map[string]any
}

// accountConn is a raw WebSocket client. Unlike a polite client it never
// answers the server's close: it is free to go on sending.
type accountConn struct {
	t      *testing.T
	nc     net.Conn
	r      io.Reader
	wmu    sync.Mutex
	in     chan accountMsg
	closed chan struct{} // the server's close frame arrived
	code   int           // its code, set before closed is
}

func (e *accountEnv) dial(query, token string) *accountConn {
	e.t.Helper()
	d := ws.Dialer{Timeout: accountWait}
	if token != "" {
		d.Header = ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + token}})
	}
	nc, br, _, err := d.Dial(context.Background(), e.srv.WSURL+"?"+query)
	if err != nil {
		e.t.Fatalf("dial %s: %v", query, err)
	}
	e.t.Cleanup(func() { _ = nc.Close() })
	c := &accountConn{t: e.t, nc: nc, r: nc, in: make(chan accountMsg, 1024), closed: make(chan struct{})}
	if br != nil {
		c.r = br
	}
	go c.read()
	return c
}

func (c *accountConn) read() {
	defer close(c.in)
	defer func() {
		select {
		case <-c.closed:
		default:
			c.code = -1 // hung up without a close frame
			close(c.closed)
		}
	}()
	r := bufio.NewReader(c.r)
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return
		}
		data := make([]byte, h.Length)
		if _, err := io.ReadFull(r, data); err != nil {
			return
		}
		switch h.OpCode {
		case ws.OpClose:
			if len(data) >= 2 {
				c.code = int(binary.BigEndian.Uint16(data))
			}
			close(c.closed)
			continue // no answer: keep reading until the server hangs up
		case ws.OpPing:
			_ = c.write(ws.OpPong, data)
			continue
		case ws.OpText:
			var m map[string]any
			if json.Unmarshal(data, &m) == nil {
				typ, _ := m["type"].(string)
				c.in <- accountMsg{typ: typ, m: m}
			}
		}
	}
}

func (c *accountConn) write(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(accountWait))
	return wsutil.WriteClientMessage(c.nc, op, p)
}

// sendChunk sends audio chunk n: 640 bytes starting with n.
func (c *accountConn) sendChunk(n uint32) error {
	chunk := make([]byte, 640)
	binary.BigEndian.PutUint32(chunk, n)
	return c.write(ws.OpBinary, chunk)
}

// expect returns the next message of type typ, failing on a close first.
func (c *accountConn) expect(typ string) accountMsg {
	c.t.Helper()
	deadline := time.After(accountWait)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				c.t.Fatalf("connection ended (close %d) while waiting for %s", c.code, typ)
			}
			if m.typ == typ {
				return m
			}
		case <-deadline:
			c.t.Fatalf("no %s within %v", typ, accountWait)
		}
	}
}

// expectClose waits up to within for the server's close frame and returns
// its code and the code of the last error message before it, if any.
func (c *accountConn) expectClose(within time.Duration) (code int, errCode string) {
	c.t.Helper()
	select {
	case <-c.closed:
	case <-time.After(within):
		c.t.Fatalf("still connected %v later", within)
	}
	// The reader queued every message that came before the close frame.
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				return c.code, errCode
			}
			if m.typ == "error" {
				errCode, _ = m.m["code"].(string)
			}
		default:
			return c.code, errCode
		}
	}
}

// chunk returns the number of an audioData message's chunk.
func (m accountMsg) chunk(t *testing.T) uint32 {
	t.Helper()
	s, _ := m.m["audioData"].(string)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) < 4 {
		t.Fatalf("audioData = %q", s)
	}
	return binary.BigEndian.Uint32(b)
}

// accountSession is a live session: its speaker and one listener.
type accountSession struct {
	id       string
	speaker  *accountConn
	listener *accountConn
}

// broadcast creates a session owned by name, connects its speaker with
// token and a listener, and checks that the listener hears the speaker.
func (e *accountEnv) broadcast(name, token string) *accountSession {
	e.t.Helper()
	sess := e.srv.CreateSession(name, "en")
	s := &accountSession{id: sess.ID}
	s.listener = e.dial("sessionId="+sess.ID+"&targetLanguage=en", "")
	s.listener.expect("sessionJoined")
	s.speaker = e.dial("sessionId="+sess.ID, token)
	s.speaker.expect("speakerConnected")
	s.hears(e.t, 1)
	return s
}

// hears sends chunk n and waits for the listener to play it.
func (s *accountSession) hears(t *testing.T, n uint32) {
	t.Helper()
	if err := s.speaker.sendChunk(n); err != nil {
		t.Fatalf("send chunk %d: %v", n, err)
	}
	for {
		if got := s.listener.expect("audioData").chunk(t); got == n {
			return
		}
	}
}

// accountAttack runs the attack common to every way a token stops
// holding: alice broadcasts with token, revoke makes the token invalid,
// and alice's speaker goes on as if nothing happened. Her live connection
// must end with 4004 within accountBound, nothing she sends afterwards
// may reach her listener, and her token must be refused at a new join and
// over HTTP, while bob, broadcasting beside her, carries on.
// It returns alice's session.
func accountAttack(t *testing.T, e *accountEnv, token, bobToken string, revoke func()) string {
	t.Helper()
	alice := e.broadcast("alice", token)
	bob := e.broadcast("bob", bobToken)

	revoke()
	revoked := time.Now()
	code, errCode := alice.speaker.expectClose(accountBound)
	if code != realtime.CloseTokenInvalid || errCode != pentecost.EAUTHINVALID {
		t.Fatalf("alice's connection closed with %d after error %q, want %d after %s",
			code, errCode, realtime.CloseTokenInvalid, pentecost.EAUTHINVALID)
	}
	t.Logf("closed %v after the token was revoked", time.Since(revoked).Round(time.Millisecond))

	// Alice ignores the close and goes on; the server reads what she sends
	// until it hangs up, and must act on none of it.
	for n := uint32(accountAfter); n < accountAfter+20; n++ {
		if alice.speaker.sendChunk(n) != nil {
			break // the server hung up
		}
	}
	_ = alice.speaker.write(ws.OpText, []byte(`{"action":"endSession"}`))
	// Events follow audio on the listener's queue, so anything relayed
	// from her would come before this.
	for {
		m := alice.listener.expect2("audioData", "speakerDisconnected")
		if m.typ == "speakerDisconnected" {
			break
		}
		if n := m.chunk(t); n >= accountAfter {
			t.Fatalf("alice's listener heard chunk %d, sent after her token was refused", n)
		}
	}
	if s, err := e.srv.Store.FindSessionByID(context.Background(), alice.id); err != nil || s.Status == pentecost.SessionEnded {
		t.Fatalf("alice's session after her close = %v, %v; want it waiting for its speaker", s, err)
	}

	again := e.dial("sessionId="+alice.id, token)
	if code, errCode := again.expectClose(accountWait); code != realtime.ClosePolicy || errCode != pentecost.EAUTHINVALID {
		t.Fatalf("a new join with the refused token closed with %d after %q, want %d after %s",
			code, errCode, realtime.ClosePolicy, pentecost.EAUTHINVALID)
	}
	if status := e.httpStatus(token); status != http.StatusUnauthorized {
		t.Fatalf("GET /sessions with the refused token = %d, want 401", status)
	}

	bob.hears(t, 2)
	select {
	case <-bob.speaker.closed:
		t.Fatalf("bob's speaker closed with %d", bob.speaker.code)
	default:
	}
	return alice.id
}

// expect2 returns the next message of type a or b.
func (c *accountConn) expect2(a, b string) accountMsg {
	c.t.Helper()
	deadline := time.After(accountWait)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				c.t.Fatalf("connection ended (close %d) while waiting for %s or %s", c.code, a, b)
			}
			if m.typ == a || m.typ == b {
				return m
			}
		case <-deadline:
			c.t.Fatalf("no %s or %s within %v", a, b, accountWait)
		}
	}
}

// TestAttack_RemovedSpeakerKeepsBroadcasting: `pentecost users remove`
// ends the account's live broadcast, not only its HTTP access.
func TestAttack_RemovedSpeakerKeepsBroadcasting(t *testing.T) {
	e := accountStart(t)
	e.addAccount("alice")
	e.addAccount("bob")
	issued := time.Now().Add(-2 * time.Second) // a token from before the removal
	accountAttack(t, e, e.token("alice", issued, time.Hour), e.token("bob", issued, time.Hour), func() {
		if err := e.accounts.Remove(context.Background(), "alice"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAttack_PasswordChangedSpeaker: `pentecost users passwd` signs out
// every token issued before it, live broadcasts included; a token from a
// sign-in after the change takes the session back.
func TestAttack_PasswordChangedSpeaker(t *testing.T) {
	e := accountStart(t)
	e.addAccount("alice")
	e.addAccount("bob")
	issued := time.Now().Add(-2 * time.Second) // whole seconds before the change
	id := accountAttack(t, e, e.token("alice", issued, time.Hour), e.token("bob", issued, time.Hour), func() {
		if err := e.accounts.SetPassword(context.Background(), "alice", "a new password for alice"); err != nil {
			t.Fatal(err)
		}
	})
	back := e.dial("sessionId="+id, e.token("alice", time.Now(), time.Hour))
	back.expect("speakerConnected")
	back.expect("stateRestored")
}

// TestAttack_ExpiredTokenSpeaker: a token that expires while its speaker
// is live ends the broadcast; a connection does not outlive its token.
func TestAttack_ExpiredTokenSpeaker(t *testing.T) {
	e := accountStart(t)
	e.addAccount("alice")
	e.addAccount("bob")
	now := time.Now()
	accountAttack(t, e, e.token("alice", now, time.Hour), e.token("bob", now, 24*time.Hour), func() {
		// Past alice's expiry and the issuer's leeway, within bob's.
		e.ahead.Store(int64(2 * time.Hour))
	})
}
