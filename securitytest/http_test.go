package securitytest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	pthttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/inmem"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/servertest"
	"github.com/pentecost/pentecost/sqlite"
)

// Attacks on the HTTP API (issue 13, item 8): a request body that never
// finishes, tokens the JWT library would take although they are not what
// a bearer token must be (a crit header, exp as a string, the typ of
// another kind of token), password guessing spread over many addresses,
// and metrics open to anyone.

// httpWait is how long a test waits for anything the server should do at
// once; only a hung server reaches it.
const httpWait = 10 * time.Second

// httpClient talks to the test servers.
var httpClient = &http.Client{Timeout: httpWait}

// httpCall sends a request and returns the response with its body read.
func httpCall(t *testing.T, method, url string, header http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// httpMustError checks that a response is the API's JSON error with the
// given status and code, and returns it.
func httpMustError(t *testing.T, resp *http.Response, body []byte, status int, code string) pthttp.ErrorResponse {
	t.Helper()
	var e pthttp.ErrorResponse
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("status %d, body not the JSON error: %q", resp.StatusCode, body)
	}
	if resp.StatusCode != status || e.Type != "error" || e.Code != code {
		t.Fatalf("got %d %s, want %d %s: %s", resp.StatusCode, e.Code, status, code, body)
	}
	return e
}

// TestAttack_StalledBody408: a client that sends its headers and part of
// its body and then nothing was cut off at the read timeout with a bare
// 499, nginx's private "client closed request", which no client knows.
// The client is still there: it must read a 408 with the API's JSON error,
// and the connection must close (what is left of the body must never be
// read as the next request).
func TestAttack_StalledBody408(t *testing.T) {
	srv := servertest.Start(t, servertest.ConfigureAPI(func(s *pthttp.Server) {
		s.ReadTimeout = 200 * time.Millisecond
	}))
	token := srv.Token("alice")

	for _, tc := range []struct{ name, sent string }{
		{"Partial", `{"sourceLanguage":`},
		// The JSON value is whole; the rest the headers announced is not.
		{"WholeValueThenStall", `{"sourceLanguage":"en"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.SetDeadline(time.Now().Add(httpWait)); err != nil {
				t.Fatal(err)
			}
			_, err = io.WriteString(conn, "POST /sessions HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer "+token+
				"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"+tc.sent)
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no response: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			httpMustError(t, resp, body, http.StatusRequestTimeout, pentecost.ETIMEOUT)
			if !resp.Close {
				t.Error("the 408 does not close the connection")
			}
			// Nothing more: the server closes rather than read on.
			if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
				t.Fatalf("after the 408: %q, %v", rest, err)
			}
		})
	}

	// Everyone else carries on.
	resp, body := httpCall(t, "POST", srv.URL+"/sessions", http.Header{
		"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"},
	}, `{"sourceLanguage":"en"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a whole request: %d %s", resp.StatusCode, body)
	}
}

// httpTokens is a server whose API accepts tokens of an embedded issuer
// and of an OIDC issuer (keys on a loopback JWKS endpoint), and mints
// tokens of both with any header and claims: the attacks below are on what
// a validly signed token may say.
type httpTokens struct {
	srv      *servertest.Server
	embedded *auth.Embedded
	oidcKey  *ecdsa.PrivateKey
}

// OIDC issuer of httpTokens.
const (
	httpOIDCIssuer   = "https://id.example.test"
	httpOIDCAudience = "pentecost-app"
	httpOIDCKID      = "k1"
)

func httpTokensStart(t *testing.T) *httpTokens {
	t.Helper()
	e := &httpTokens{}
	var err error
	if e.oidcKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(e.oidcKey.Public(), jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: httpOIDCKID, ALG: jwkset.AlgES256, USE: jwkset.UseSig},
	})
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	if err != nil {
		t.Fatal(err)
	}
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(set)
	}))
	t.Cleanup(jwks.Close)
	o := auth.NewOIDC(auth.OIDCConfig{
		Name: "corp", Issuer: httpOIDCIssuer, JWKSURL: jwks.URL,
		Audience: []string{httpOIDCAudience}, Algorithms: []string{"ES256"},
	})
	if err := o.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })

	key, err := auth.LoadOrCreateKey(filepath.Join(t.TempDir(), "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	e.embedded = auth.NewEmbedded(key)
	v := auth.NewVerifier(e.embedded, o)
	e.srv = servertest.Start(t,
		servertest.Configure(func(s *realtime.Server) { s.Verifier = v }),
		servertest.ConfigureAPI(func(s *pthttp.Server) { s.Verifier = v }))
	return e
}

// httpIssuers names the two kinds of issuer every token attack is tried on.
var httpIssuers = []string{"Embedded", "OIDC"}

// token returns a token of the named issuer, signed with its key, with
// valid claims and header changed as given: a nil value deletes.
func (e *httpTokens) token(t *testing.T, issuer string, header, claims map[string]any) string {
	t.Helper()
	now := time.Now()
	var tok *jwt.Token
	var key any
	switch issuer {
	case "Embedded":
		tok = jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
			"iss": auth.DefaultIssuer, "aud": []string{auth.DefaultAudience}, "sub": "ada",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		})
		tok.Header["kid"] = e.embedded.KeyID()
		key = e.embedded.Key
	case "OIDC":
		tok = jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
			"iss": httpOIDCIssuer, "aud": httpOIDCAudience, "sub": "ada",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		})
		tok.Header["kid"] = httpOIDCKID
		key = e.oidcKey
	default:
		t.Fatalf("no issuer %q", issuer)
	}
	mc := tok.Claims.(jwt.MapClaims)
	for k, v := range claims {
		if v == nil {
			delete(mc, k)
		} else {
			mc[k] = v
		}
	}
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// try answers whether the API takes token for GET /sessions: it fails the
// test on anything but 200 or the API's 401 AUTH_INVALID_TOKEN.
func (e *httpTokens) try(t *testing.T, token string) bool {
	t.Helper()
	resp, body := httpCall(t, "GET", e.srv.URL+"/sessions", http.Header{"Authorization": {"Bearer " + token}}, "")
	if resp.StatusCode == http.StatusOK {
		return true
	}
	httpMustError(t, resp, body, http.StatusUnauthorized, pentecost.EAUTHINVALID)
	return false
}

// httpTokenCase is a change to a valid token and whether the API takes it.
type httpTokenCase struct {
	name           string
	header, claims map[string]any
	accepted       bool
}

func (e *httpTokens) run(t *testing.T, cases []httpTokenCase) {
	for _, issuer := range httpIssuers {
		for _, tc := range cases {
			t.Run(issuer+"/"+tc.name, func(t *testing.T) {
				if got := e.try(t, e.token(t, issuer, tc.header, tc.claims)); got != tc.accepted {
					t.Fatalf("accepted = %v, want %v", got, tc.accepted)
				}
			})
		}
	}
}

// TestAttack_JWTCritHeader: golang-jwt ignores "crit", so a token whose
// issuer marked an extension as critical (say, "only valid with proof of
// possession") was taken without it. RFC 7515 §4.1.11: a recipient that
// does not understand a critical extension must refuse the token; the
// server understands none.
func TestAttack_JWTCritHeader(t *testing.T) {
	e := httpTokensStart(t)
	e.run(t, []httpTokenCase{
		{name: "Plain", accepted: true},
		{name: "CritUnknown", header: map[string]any{"crit": []string{"x-pop"}, "x-pop": true}},
		{name: "CritEmpty", header: map[string]any{"crit": []string{}}},
		{name: "CritRegistered", header: map[string]any{"crit": []string{"exp"}}},
	})
}

// TestAttack_JWTExpString: golang-jwt takes a string holding a number for
// exp, nbf and iat, where RFC 7519 requires a NumericDate (a JSON number),
// and, through encoding/json, "EXP" for "exp". A token is refused unless
// each is spelled and typed as the RFC says.
func TestAttack_JWTExpString(t *testing.T) {
	e := httpTokensStart(t)
	later := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	e.run(t, []httpTokenCase{
		{name: "Number", accepted: true},
		{name: "ExpString", claims: map[string]any{"exp": later}},
		{name: "IatString", claims: map[string]any{"iat": now}},
		{name: "NbfString", claims: map[string]any{"nbf": now}},
		{name: "ExpNull", claims: map[string]any{"exp": json.RawMessage("null")}},
		{name: "ExpOtherCase", claims: map[string]any{"exp": nil, "EXP": json.RawMessage(later)}},
		{name: "SubOtherCase", claims: map[string]any{"Sub": "root"}},
	})
}

// TestAttack_JWTTyp: no typ was checked, so a token of another kind from
// the same issuer, such as a logout token or a security event (RFC 8725
// §3.11), passed for a bearer token. A plain JWT or an access token
// (RFC 9068), any case, with or without "application/", or no typ at all
// (Cognito writes none) is taken; any other typ is refused.
func TestAttack_JWTTyp(t *testing.T) {
	e := httpTokensStart(t)
	cases := []httpTokenCase{{name: "Absent", header: map[string]any{"typ": nil}, accepted: true}}
	for _, typ := range []string{"JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt", "application/jwt"} {
		cases = append(cases, httpTokenCase{name: "Accept/" + typ, header: map[string]any{"typ": typ}, accepted: true})
	}
	for _, typ := range []any{"logout+jwt", "secevent+jwt", "dpop+jwt", "JOSE", "id_token", "", 7} {
		name := fmt.Sprint(typ)
		if name == "" {
			name = "empty"
		}
		cases = append(cases, httpTokenCase{name: "Refuse/" + name, header: map[string]any{"typ": typ}})
	}
	e.run(t, cases)
}

// httpPassword is the password of httpLogin's accounts "owner" and
// "mallory".
const httpPassword = "correct horse battery staple"

// httpLogin is a server with password sign-in for the accounts "owner" and
// "mallory", behind a trusted proxy (X-Forwarded-For names the client) and
// with rate limits on a clock the test moves by hand.
type httpLogin struct {
	srv      *servertest.Server
	accounts *auth.Accounts
	mu       sync.Mutex
	now      time.Time
	tries    int // guesses sent so far, to make each one different
	ips      int // client addresses used so far, to give each guess new ones
}

// httpLoginStart starts an httpLogin; configure, if given, changes its
// rate limiter before the server starts.
func httpLoginStart(t *testing.T, configure ...func(*inmem.RateLimiter)) *httpLogin {
	t.Helper()
	e := &httpLogin{now: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)}
	dir := t.TempDir()
	db := sqlite.NewDB(filepath.Join(dir, "accounts.db"))
	db.Now = e.clock // when passwords were set, for device cookies
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	accounts := auth.NewAccounts(sqlite.NewUserStore(db))
	accounts.Params = auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLength: 16, KeyLength: 32}
	e.accounts = accounts
	for _, name := range []string{"owner", "mallory"} {
		if _, err := accounts.Add(context.Background(), name, httpPassword); err != nil {
			t.Fatal(err)
		}
	}
	key, err := auth.LoadOrCreateKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	issuer := auth.NewEmbedded(key)
	issuer.Now = e.clock
	limiter := inmem.NewRateLimiter()
	limiter.Now = e.clock
	for _, f := range configure {
		f(limiter)
	}
	e.srv = servertest.Start(t, servertest.ConfigureAPI(func(s *pthttp.Server) {
		s.Accounts, s.Issuer, s.Verifier = accounts, issuer, auth.NewVerifier(issuer)
		s.RateLimiter = limiter
		s.Limits = pthttp.DefaultLimits()
		s.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		s.Now = e.clock
	}))
	return e
}

func (e *httpLogin) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *httpLogin) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

// httpAttempt is the outcome of one sign-in attempt.
type httpAttempt struct {
	status     int
	err        pthttp.ErrorResponse // unless 200
	retryAfter time.Duration        // with 429: the Retry-After header
	token      string               // with 200
	device     *http.Cookie         // with 200: the device cookie set
}

// login tries to sign in to name from client ip, sending the device
// cookie when there is one.
func (e *httpLogin) login(t *testing.T, ip, name, password string, device *http.Cookie) httpAttempt {
	t.Helper()
	a, err := e.attempt(ip, name, password, device)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// attempt is login for any goroutine.
func (e *httpLogin) attempt(ip, name, password string, device *http.Cookie) (httpAttempt, error) {
	body, _ := json.Marshal(map[string]string{"username": name, "password": password})
	req, err := http.NewRequest("POST", e.srv.URL+"/auth/login", strings.NewReader(string(body)))
	if err != nil {
		return httpAttempt{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", ip)
	if device != nil {
		req.AddCookie(device)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return httpAttempt{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return httpAttempt{}, err
	}
	a := httpAttempt{status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		var ok pthttp.LoginResponse
		if err := json.Unmarshal(raw, &ok); err != nil {
			return a, fmt.Errorf("login: %s", raw)
		}
		a.token = ok.Token
		for _, c := range resp.Cookies() {
			if c.Name == "pentecost_device" {
				a.device = c
			}
		}
		return a, nil
	}
	if err := json.Unmarshal(raw, &a.err); err != nil || a.err.Code == "" {
		return a, fmt.Errorf("status %d, body not the JSON error: %q", resp.StatusCode, raw)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		s, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || s < 1 || s != a.err.RetryAfter {
			return a, fmt.Errorf("429 with Retry-After %q, retryAfter %d", resp.Header.Get("Retry-After"), a.err.RetryAfter)
		}
		a.retryAfter = time.Duration(s) * time.Second
	}
	return a, nil
}

// newIPs returns n client addresses no guess has used yet, from
// 198.18.0.0/15, so that no address's own limit comes into play.
func (e *httpLogin) newIPs(n int) []string {
	e.mu.Lock()
	first := e.ips
	e.ips += n
	e.mu.Unlock()
	out := make([]string, n)
	for i := range out {
		k := first + i
		out[i] = netip.AddrFrom4([4]byte{198, 18 + byte(k>>16&1), byte(k >> 8), byte(k)}).String()
	}
	return out
}

// guess sends n wrong passwords for name, spread evenly over ips new
// client addresses, ten at a time, and counts the answers: checked (401)
// and refused (429, Retry-After at most maxRetry). It fails the test on
// any other answer.
func (e *httpLogin) guess(t *testing.T, name string, n, ips int, maxRetry time.Duration) (checked, refused int, longest time.Duration) {
	t.Helper()
	e.mu.Lock()
	first := e.tries
	e.tries += n
	e.mu.Unlock()
	addrs := e.newIPs(ips)
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range 10 {
		wg.Go(func() {
			for i := range next {
				a, err := e.attempt(addrs[i%ips], name, fmt.Sprintf("guess-%d", first+i), nil)
				mu.Lock()
				switch {
				case err != nil:
					t.Error(err)
				case a.status == http.StatusUnauthorized && a.err.Code == pentecost.EAUTHCREDENTIALS:
					checked++
				case a.status == http.StatusTooManyRequests && a.err.Code == pentecost.ERATELIMIT:
					refused++
					if a.retryAfter > maxRetry {
						t.Errorf("Retry-After %v, more than %v", a.retryAfter, maxRetry)
					}
					longest = max(longest, a.retryAfter)
				default:
					t.Errorf("guess answered %d %s", a.status, a.err.Code)
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return checked, refused, longest
}

// httpMaxRetry is the longest Retry-After the per-account backoff may give.
var httpMaxRetry = pthttp.DefaultLimits().LoginAttemptsPerAccount.Slow.Per

// TestAttack_LoginGuessingAcrossIPs: sign-in was limited per client IP
// only, so 500 guesses at one account from 50 addresses in 30 s were all
// checked. Guesses at one account are now limited from all addresses
// together: 10 at once, 40 a day, then one every 15 minutes, and no
// Retry-After is ever longer than that.
func TestAttack_LoginGuessingAcrossIPs(t *testing.T) {
	e := httpLoginStart(t)
	burst := pthttp.DefaultLimits().LoginAttemptsPerAccount.Burst.Events

	// Ten guesses from each of 50 addresses: within every address's own
	// limit, and all at one instant of the limiter's clock.
	checked, refused, _ := e.guess(t, "owner", 500, 50, time.Minute)
	if checked != burst || refused != 500-burst {
		t.Fatalf("%d guesses checked and %d refused, want %d and %d", checked, refused, burst, 500-burst)
	}
	// Names that do not exist are limited alike: the 429 says nothing
	// about which accounts there are.
	if checked, _, _ := e.guess(t, "nobody", 50, 50, time.Minute); checked != burst {
		t.Fatalf("%d guesses at an unknown name checked, want %d", checked, burst)
	}

	// An attacker who comes back whenever told to, for a day.
	total := checked
	for start := e.clock(); e.clock().Sub(start) < 24*time.Hour; {
		// One more than the burst: at least one is refused and says when
		// to come back.
		c, _, longest := e.guess(t, "owner", burst+1, burst+1, httpMaxRetry)
		if longest == 0 {
			t.Fatalf("%d guesses at once, none refused", burst+1)
		}
		total += c
		e.advance(longest)
	}
	// 40 a day, then 4 an hour: 136, and a few more as the first of the
	// day's 40 leave the window at its end.
	if total > 150 {
		t.Fatalf("%d guesses checked in a day, want about 136", total)
	}
	t.Logf("%d guesses checked in a day", total)
}

// TestAttack_OwnerNotLockedOut: a limit per account must not become a way
// to lock its owner out. A browser that signed in before carries a device
// cookie and signs in during the attack; a new browser is told to come back
// within 15 minutes, and gets in then once the attack has stopped (while
// it goes on, the attacker may take that slot first). Neither a forged
// cookie nor the cookie of the attacker's own account buys the attacker
// anything.
func TestAttack_OwnerNotLockedOut(t *testing.T) {
	e := httpLoginStart(t)
	const home, elsewhere, attacker = "192.0.2.10", "192.0.2.20", "203.0.113.66"
	first := e.login(t, home, "owner", httpPassword, nil)
	if first.status != http.StatusOK || first.device == nil {
		t.Fatalf("first sign-in: %d, device cookie %v", first.status, first.device)
	}
	if !first.device.HttpOnly || first.device.SameSite != http.SameSiteStrictMode {
		t.Errorf("device cookie %v: want HttpOnly, SameSite=Strict", first.device)
	}
	own := e.login(t, attacker, "mallory", httpPassword, nil)
	if own.status != http.StatusOK || own.device == nil {
		t.Fatalf("attacker's own sign-in: %d", own.status)
	}

	if _, refused, _ := e.guess(t, "owner", 500, 50, time.Minute); refused == 0 {
		t.Fatal("the attack was not limited")
	}

	// A browser the account has not seen is refused for now, however right
	// its password; so is a forged cookie, and so is the cookie of
	// another account.
	stranger := e.login(t, elsewhere, "owner", httpPassword, nil)
	if stranger.status != http.StatusTooManyRequests || stranger.retryAfter > httpMaxRetry {
		t.Fatalf("new browser during the attack: %d, Retry-After %v", stranger.status, stranger.retryAfter)
	}
	forged := *first.device
	forged.Value = strings.Replace(forged.Value, ".", "x.", 1)
	if a := e.login(t, elsewhere, "owner", httpPassword, &forged); a.status != http.StatusTooManyRequests {
		t.Fatalf("forged device cookie: %d", a.status)
	}
	if a := e.login(t, attacker, "owner", "guess-with-own-cookie", own.device); a.status != http.StatusTooManyRequests {
		t.Fatalf("guess with the cookie of the attacker's own account: %d %s", a.status, a.err.Code)
	}

	// The owner's own browser signs in, and its token works.
	again := e.login(t, home, "owner", httpPassword, first.device)
	if again.status != http.StatusOK {
		t.Fatalf("owner's browser during the attack: %d %s", again.status, again.err.Code)
	}
	resp, body := httpCall(t, "GET", e.srv.URL+"/sessions", http.Header{"Authorization": {"Bearer " + again.token}}, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("owner's token: %d %s", resp.StatusCode, body)
	}

	// Once the attacker stops, a new browser gets in after the Retry-After.
	e.advance(stranger.retryAfter)
	if a := e.login(t, elsewhere, "owner", httpPassword, nil); a.status != http.StatusOK {
		t.Fatalf("new browser %v after the attack: %d %s", stranger.retryAfter, a.status, a.err.Code)
	}
}

// TestAttack_OwnerBehindAttackersNAT: the owner's browser was counted
// against its client address before its device cookie was looked at, so
// an attacker behind the same address (a venue's NAT, one IPv6 /64) who
// kept that address's sign-in budget empty locked the owner out. A valid
// device cookie now counts against its own budget only; without one, the
// address's limit and the account's backoff hold as before.
func TestAttack_OwnerBehindAttackersNAT(t *testing.T) {
	e := httpLoginStart(t)
	// Two addresses of one /64: one client.
	const owner, attacker = "2001:db8:7:7::10", "2001:db8:7:7::66"
	first := e.login(t, owner, "owner", httpPassword, nil)
	if first.status != http.StatusOK || first.device == nil {
		t.Fatalf("first sign-in: %d, device cookie %v", first.status, first.device)
	}
	mallory := e.login(t, attacker, "mallory", httpPassword, nil)
	if mallory.status != http.StatusOK || mallory.device == nil {
		t.Fatalf("attacker's own sign-in: %d", mallory.status)
	}

	// The account's backoff from many addresses, then the shared
	// address's own budget.
	if _, refused, _ := e.guess(t, "owner", 500, 50, time.Minute); refused == 0 {
		t.Fatal("the attack was not limited")
	}
	for i := range pthttp.DefaultLimits().LoginAttemptsPerMinute.Events {
		if a := e.login(t, attacker, "owner", fmt.Sprint("nat-guess-", i), nil); a.status != http.StatusTooManyRequests {
			t.Fatalf("guess %d behind the NAT: %d", i, a.status)
		}
	}
	// The address's budget is empty: even an account nobody guesses at is
	// refused from it, and so are a forged cookie and the cookie of
	// another account.
	if a := e.login(t, attacker, "mallory", httpPassword, nil); a.status != http.StatusTooManyRequests {
		t.Fatalf("the shared address's budget is not empty: mallory signs in with %d", a.status)
	}
	forged := *first.device
	forged.Value = strings.Replace(forged.Value, ".", "x.", 1)
	if a := e.login(t, attacker, "owner", "forged-cookie-guess", &forged); a.status != http.StatusTooManyRequests {
		t.Fatalf("forged device cookie behind the NAT: %d", a.status)
	}
	if a := e.login(t, attacker, "owner", "own-cookie-guess", mallory.device); a.status != http.StatusTooManyRequests {
		t.Fatalf("the attacker's own cookie behind the NAT: %d", a.status)
	}
	if a := e.login(t, owner, "owner", httpPassword, nil); a.status != http.StatusTooManyRequests {
		t.Fatalf("a new browser behind the NAT: %d", a.status)
	}

	// The owner's browser signs in from the same address, and its token
	// works.
	again := e.login(t, owner, "owner", httpPassword, first.device)
	if again.status != http.StatusOK {
		t.Fatalf("owner's browser behind the attacker's NAT: %d %s", again.status, again.err.Code)
	}
	resp, body := httpCall(t, "GET", e.srv.URL+"/sessions", http.Header{"Authorization": {"Bearer " + again.token}}, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("owner's token: %d %s", resp.StatusCode, body)
	}

	// The cookie buys a budget, not a pass: guesses sent with it are
	// limited like any browser's.
	burst := pthttp.DefaultLimits().LoginAttemptsPerAccount.Burst.Events
	for i := range burst - 1 {
		if a := e.login(t, attacker, "owner", fmt.Sprint("cookie-guess-", i), again.device); a.status != http.StatusUnauthorized {
			t.Fatalf("guess %d with the owner's cookie: %d", i, a.status)
		}
	}
	if a := e.login(t, attacker, "owner", "one-guess-too-many", again.device); a.status != http.StatusTooManyRequests {
		t.Fatalf("guess %d with the owner's cookie within a minute: %d", burst+1, a.status)
	}
}

// TestAttack_DeviceCookieOutlivesPassword: device cookies were good until
// they expired, so whoever knew an old password could collect many, each
// a budget of its own for guessing the new one. A cookie issued before the
// account's password was last set now counts for nothing; one issued
// since works as before.
func TestAttack_DeviceCookieOutlivesPassword(t *testing.T) {
	e := httpLoginStart(t)
	const home, attacker = "192.0.2.10", "203.0.113.66"
	const newPassword = "a new password nobody else knows"
	var collected []*http.Cookie
	for i := range 3 {
		a := e.login(t, fmt.Sprint("203.0.113.", 100+i), "owner", httpPassword, nil)
		if a.status != http.StatusOK || a.device == nil {
			t.Fatalf("collecting cookie %d: %d", i, a.status)
		}
		collected = append(collected, a.device)
	}
	e.advance(time.Hour)
	if err := e.accounts.SetPassword(context.Background(), "owner", newPassword); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Second)
	fresh := e.login(t, home, "owner", newPassword, nil)
	if fresh.status != http.StatusOK || fresh.device == nil {
		t.Fatalf("sign-in with the new password: %d", fresh.status)
	}

	if _, refused, _ := e.guess(t, "owner", 500, 50, time.Minute); refused == 0 {
		t.Fatal("the attack was not limited")
	}
	for i, c := range collected {
		if a := e.login(t, attacker, "owner", fmt.Sprint("old-cookie-guess-", i), c); a.status != http.StatusTooManyRequests {
			t.Fatalf("guess with cookie %d from before the password change: %d %s", i, a.status, a.err.Code)
		}
	}
	if a := e.login(t, home, "owner", newPassword, fresh.device); a.status != http.StatusOK {
		t.Fatalf("owner's browser with a cookie from after the change: %d %s", a.status, a.err.Code)
	}
}

// TestAttack_KeyFloodResetsBackoff: the in-memory limiter forgot its least
// recently used key once it held 100,000, so an attacker who had used up
// an account's backoff could send sign-ins for made-up names from enough
// new addresses (an IPv6 /48 holds 65,536 /64s) to push the account's
// counts out, and guess at full speed again. Names that do not exist are
// now counted under keys of their own kind, and the limiter makes room
// among the kind that holds the most keys. Here it holds 300 keys and the
// flood brings 1,200.
func TestAttack_KeyFloodResetsBackoff(t *testing.T) {
	const maxKeys = 300
	e := httpLoginStart(t, func(l *inmem.RateLimiter) { l.MaxKeys = maxKeys })
	burst := pthttp.DefaultLimits().LoginAttemptsPerAccount.Burst.Events

	// Guess until the account is down to its slow pace.
	var wait time.Duration
	for start := e.clock(); wait <= time.Minute; {
		if e.clock().Sub(start) > time.Hour {
			t.Fatal("the account's backoff never went past a minute")
		}
		_, _, wait = e.guess(t, "owner", burst+1, burst+1, httpMaxRetry)
		if wait <= time.Minute {
			e.advance(wait)
		}
	}

	e.advance(time.Minute) // past the burst: what is left is the slow pace

	// 400 made-up names from 400 new addresses: each is checked (the
	// addresses and names are new), and leaves three keys behind.
	addrs := e.newIPs(400)
	for i, ip := range addrs {
		if a := e.login(t, ip, fmt.Sprint("nobody-", i), "flood", nil); a.status != http.StatusUnauthorized {
			t.Fatalf("flood sign-in %d: %d %s", i, a.status, a.err.Code)
		}
	}

	// The account is still at its slow pace.
	a := e.login(t, e.newIPs(1)[0], "owner", "after-the-flood", nil)
	if a.status != http.StatusTooManyRequests || a.retryAfter <= time.Minute {
		t.Fatalf("guess after the flood: %d, Retry-After %v; want 429 and more than a minute", a.status, a.retryAfter)
	}
}

// TestAttack_MetricsNotOnAPIPort: /metrics on the API's port answered
// anyone who could reach the API. Without a metrics listener of its own it
// now answers only loopback and private addresses, as far as the trusted
// proxies tell, and with one (MetricsAddr) the API's port never does.
func TestAttack_MetricsNotOnAPIPort(t *testing.T) {
	// servertest's gatherer is a registry of its own: the exposition is
	// empty, but it is Prometheus' text format, never the API's JSON.
	metrics := func(t *testing.T, url string, header http.Header) (*http.Response, []byte) {
		t.Helper()
		return httpCall(t, "GET", url, header, "")
	}
	notFound := func(t *testing.T, url string, header http.Header) {
		t.Helper()
		resp, body := metrics(t, url, header)
		httpMustError(t, resp, body, http.StatusNotFound, pentecost.ENOTFOUND)
	}
	served := func(t *testing.T, url string, header http.Header) {
		t.Helper()
		resp, body := metrics(t, url, header)
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/plain") {
			t.Fatalf("%s: %d %s %.200s", url, resp.StatusCode, ct, body)
		}
	}

	t.Run("APIPort", func(t *testing.T) {
		srv := servertest.Start(t, servertest.ConfigureAPI(func(s *pthttp.Server) {
			s.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		}))
		url := srv.URL + "/metrics"
		served(t, url, nil) // a scraper on this machine
		served(t, url, http.Header{"X-Forwarded-For": {"10.1.2.3"}})
		notFound(t, url, http.Header{"X-Forwarded-For": {"203.0.113.9"}})
		notFound(t, url, http.Header{"X-Forwarded-For": {"2001:db8::1"}})
		// Headers ClientIP does not read might name anyone.
		notFound(t, url, http.Header{"X-Real-Ip": {"203.0.113.9"}})
		notFound(t, url, http.Header{"Forwarded": {"for=203.0.113.9"}})
	})

	t.Run("UntrustedProxy", func(t *testing.T) {
		// A proxy on this machine that is not declared trusted: whoever
		// it forwards could be anyone.
		srv := servertest.Start(t)
		notFound(t, srv.URL+"/metrics", http.Header{"X-Forwarded-For": {"10.1.2.3"}})
		served(t, srv.URL+"/metrics", nil)
	})

	t.Run("OwnListener", func(t *testing.T) {
		srv := servertest.Start(t, servertest.ConfigureAPI(func(s *pthttp.Server) {
			s.MetricsAddr = "127.0.0.1:0"
		}))
		notFound(t, srv.URL+"/metrics", nil)
		if !strings.HasPrefix(srv.API.MetricsURL(), "http://127.0.0.1:") {
			t.Fatalf("MetricsURL = %q", srv.API.MetricsURL())
		}
		served(t, srv.API.MetricsURL(), nil)
		// Only /metrics is there.
		if resp, _ := httpCall(t, "GET", strings.TrimSuffix(srv.API.MetricsURL(), "/metrics")+"/sessions", nil, ""); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("metrics listener answers /sessions: %d", resp.StatusCode)
		}
	})
}
