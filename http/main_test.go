package http_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	phttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/inmem"
	"github.com/pentecost/pentecost/sessionid"
	"github.com/pentecost/pentecost/sqlite"
)

// cheapParams keep argon2id fast in tests; production uses DefaultParams.
var cheapParams = auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLength: 16, KeyLength: 32}

// TestServer is a Server wired to a real SQLite file, the real embedded
// issuer and the in-memory rate limiter, all on one hand-moved clock.
type TestServer struct {
	*phttp.Server
	DB       *sqlite.DB
	Sessions *sqlite.SessionService
	Accounts *auth.Accounts
	Issuer   *auth.Embedded
	Limiter  *inmem.RateLimiter
	Clock    *Clock
	Logs     *Buffer

	ids *idQueue
}

// MustOpenServer opens a TestServer on 127.0.0.1:0. Each option may change
// the server's configuration before Open. The server and store are closed
// when the test ends. Its tokens may name any user: the issuer looks no
// account up, so nobody is an admin.
func MustOpenServer(tb testing.TB, opts ...func(*phttp.Server)) *TestServer {
	tb.Helper()
	return mustOpenServer(tb, false, opts...)
}

// MustOpenAccountServer is MustOpenServer with the issuer reading the
// accounts, as cmd/pentecost wires it: a token is good only while its
// account exists, and its user has the account's role now.
func MustOpenAccountServer(tb testing.TB, opts ...func(*phttp.Server)) *TestServer {
	tb.Helper()
	return mustOpenServer(tb, true, opts...)
}

// MustAddAccount adds an account with a role and returns a token for it.
func (ts *TestServer) MustAddAccount(tb testing.TB, name string, role pentecost.Role) string {
	tb.Helper()
	if _, err := ts.Accounts.AddWithRole(context.Background(), name, "correct horse battery", role); err != nil {
		tb.Fatal(err)
	}
	return ts.Token(tb, name)
}

func mustOpenServer(tb testing.TB, checkAccounts bool, opts ...func(*phttp.Server)) *TestServer {
	tb.Helper()
	ts := &TestServer{Clock: NewClock(), Logs: &Buffer{}, ids: &idQueue{gen: sessionid.NewGenerator()}}
	logger := slog.New(slog.NewJSONHandler(ts.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	ts.DB = sqlite.NewDB(filepath.Join(tb.TempDir(), "pentecost.db"))
	ts.DB.Now = ts.Clock.Now
	ts.DB.Logger = logger
	if err := ts.DB.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ts.DB.Close() })
	ts.Sessions = sqlite.NewSessionService(ts.DB)
	ts.Sessions.GenerateID = ts.ids.next

	ts.Accounts = auth.NewAccounts(sqlite.NewUserStore(ts.DB))
	ts.Accounts.Params = cheapParams
	ts.Accounts.Now = ts.Clock.Now

	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	ts.Issuer = auth.NewEmbedded(key)
	ts.Issuer.Now = ts.Clock.Now
	if checkAccounts {
		ts.Issuer.Users = ts.Accounts.Users
	}
	verifier := auth.NewVerifier(ts.Issuer)
	verifier.Logger = logger

	ts.Limiter = inmem.NewRateLimiter()
	ts.Limiter.Now = ts.Clock.Now

	s := phttp.NewServer()
	s.Addr = "127.0.0.1:0"
	s.Logger = logger
	s.Sessions = ts.Sessions
	s.Verifier = verifier
	s.Accounts = ts.Accounts
	s.Issuer = ts.Issuer
	s.RateLimiter = ts.Limiter
	s.Ready = ts.DB.Ping
	s.Now = ts.Clock.Now
	for _, opt := range opts {
		opt(s)
	}
	ts.Server = s
	if err := s.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close server: %v", err)
		}
	})
	return ts
}

// Token mints a bearer token for a speaker with the given ID.
func (ts *TestServer) Token(tb testing.TB, userID string) string {
	tb.Helper()
	u := &pentecost.User{ID: userID, Name: userID, Issuer: pentecost.EmbeddedIssuer}
	token, err := ts.Issuer.IssueToken(context.Background(), u, time.Hour*24)
	if err != nil {
		tb.Fatal(err)
	}
	return token
}

// Client returns an API client acting as the speaker userID, or as an
// anonymous caller when userID is "".
func (ts *TestServer) Client(tb testing.TB, userID string) *phttp.Client {
	tb.Helper()
	c := phttp.NewClient(ts.URL())
	if userID != "" {
		c.Token = ts.Token(tb, userID)
	}
	return c
}

// NextIDs makes the next sessions created get these IDs, in order.
func (ts *TestServer) NextIDs(ids ...string) { ts.ids.push(ids...) }

// MustCreateSession creates a session as userID and returns it.
func (ts *TestServer) MustCreateSession(tb testing.TB, userID, lang string) *pentecost.Session {
	tb.Helper()
	s := &pentecost.Session{SourceLanguage: lang}
	if err := ts.Client(tb, userID).CreateSession(context.Background(), s); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Response is a raw answer of the server.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Err decodes the body as the error shape.
func (r *Response) Err(tb testing.TB) phttp.ErrorResponse {
	tb.Helper()
	var e phttp.ErrorResponse
	if err := json.Unmarshal(r.Body, &e); err != nil {
		tb.Fatalf("error body %q: %v", r.Body, err)
	}
	return e
}

// Request describes a raw request for Do.
type Request struct {
	Method, Path string
	Token        string
	Body         string
	ContentType  string // "application/json" by default when Body is set
	Header       map[string]string
}

// Do sends a raw request, for the cases a well-behaved client cannot send.
func (ts *TestServer) Do(tb testing.TB, req Request) *Response {
	tb.Helper()
	var body io.Reader
	if req.Body != "" {
		body = strings.NewReader(req.Body)
	}
	r, err := http.NewRequest(req.Method, ts.URL()+req.Path, body)
	if err != nil {
		tb.Fatal(err)
	}
	if req.Body != "" {
		ct := req.ContentType
		if ct == "" {
			ct = "application/json"
		}
		if ct != "-" {
			r.Header.Set("Content-Type", ct)
		}
	}
	if req.Token != "" {
		r.Header.Set("Authorization", "Bearer "+req.Token)
	}
	for k, v := range req.Header {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// MustError checks a response's status and error code.
func MustError(tb testing.TB, resp *Response, status int, code string) phttp.ErrorResponse {
	tb.Helper()
	if resp.Status != status {
		tb.Fatalf("status = %d, want %d; body %s", resp.Status, status, resp.Body)
	}
	e := resp.Err(tb)
	if e.Code != code {
		tb.Fatalf("code = %q, want %q; body %s", e.Code, code, resp.Body)
	}
	if e.Type != "error" || e.Message == "" || e.CorrelationID == "" || e.Timestamp == 0 {
		tb.Fatalf("incomplete error shape: %s", resp.Body)
	}
	if got := resp.Header.Get(phttp.CorrelationHeader); got != e.CorrelationID {
		tb.Fatalf("correlation header %q, body %q", got, e.CorrelationID)
	}
	return e
}

// MustCode checks the code of an error returned by the client.
func MustCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := pentecost.ErrorCode(err); got != code {
		tb.Fatalf("code = %q, want %q (err %v)", got, code, err)
	}
}

// Clock is a hand-moved clock safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at a fixed instant with whole milliseconds.
func NewClock() *Clock { return &Clock{now: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock forward.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Buffer is a bytes.Buffer safe for concurrent writes, to capture logs.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// idQueue hands out queued session IDs first, then random ones.
type idQueue struct {
	mu    sync.Mutex
	queue []string
	gen   *sessionid.Generator
}

func (q *idQueue) push(ids ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queue = append(q.queue, ids...)
}

func (q *idQueue) next() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) > 0 {
		id := q.queue[0]
		q.queue = q.queue[1:]
		return id
	}
	return q.gen.New()
}
