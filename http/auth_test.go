package http_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	phttp "github.com/pentecost/pentecost/http"
)

const testPassword = "correct horse battery"

func TestLogin(t *testing.T) {
	ts := MustOpenServer(t)
	ctx := context.Background()
	if _, err := ts.Accounts.Add(ctx, "alice", testPassword); err != nil {
		t.Fatal(err)
	}

	t.Run("OK", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: `{"username":"alice","password":"` + testPassword + `"}`})
		if resp.Status != 200 {
			t.Fatalf("status %d body %s", resp.Status, resp.Body)
		}
		var got phttp.LoginResponse
		mustUnmarshal(t, resp.Body, &got)
		want := ts.Clock.Now().Add(phttp.DefaultTokenTTL).UnixMilli()
		if got.Token == "" || got.TokenType != "Bearer" || got.ExpiresAt != want ||
			got.User != (phttp.LoginUser{ID: "alice", Name: "alice", Role: pentecost.RoleSpeaker}) {
			t.Fatalf("body %s", resp.Body)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("Cache-Control = %q", cc)
		}
		// The token works for the speaker's routes.
		c := ts.Client(t, "")
		c.Token = got.Token
		s := &pentecost.Session{SourceLanguage: "en"}
		if err := c.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		if s.OwnerID != "alice" {
			t.Fatalf("owner = %q", s.OwnerID)
		}
	})

	t.Run("OK/NameField", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: `{"name":"alice","password":"` + testPassword + `"}`})
		if resp.Status != 200 {
			t.Fatalf("status %d body %s", resp.Status, resp.Body)
		}
	})

	t.Run("OK/Client", func(t *testing.T) {
		token, err := ts.Client(t, "").Login(ctx, "alice", testPassword)
		if err != nil {
			t.Fatal(err)
		}
		u, err := ts.Verifier.VerifyToken(ctx, token)
		if err != nil || u.ID != "alice" {
			t.Fatalf("token for %v, err %v", u, err)
		}
	})

	for _, tt := range []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"ErrWrongPassword", `{"username":"alice","password":"wrong password"}`, 401, pentecost.EAUTHCREDENTIALS},
		{"ErrUnknownUser", `{"username":"mallory","password":"` + testPassword + `"}`, 401, pentecost.EAUTHCREDENTIALS},
		{"ErrNoUsername", `{"password":"` + testPassword + `"}`, 400, pentecost.EVALIDATIONFIELD},
		{"ErrNoPassword", `{"username":"alice"}`, 400, pentecost.EVALIDATIONFIELD},
		{"ErrUnknownField", `{"username":"alice","password":"x","otp":"1"}`, 400, pentecost.EVALIDATIONBODY},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts.Clock.Add(time.Minute) // stay clear of the login rate limit
			resp := ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: tt.body})
			MustError(t, resp, tt.status, tt.code)
			if tt.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}

	t.Run("ErrClientWrongPassword", func(t *testing.T) {
		ts.Clock.Add(time.Minute)
		_, err := ts.Client(t, "").Login(ctx, "alice", "wrong password")
		MustCode(t, err, pentecost.EAUTHCREDENTIALS)
	})

	t.Run("ErrRateLimitExceeded/BadBodies", func(t *testing.T) {
		// Refused bodies count too, although the body is read first.
		ts.Clock.Add(time.Minute)
		for range phttp.DefaultLimits().LoginAttemptsPerMinute.Events {
			resp := ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: `{"username":"alice"`})
			MustError(t, resp, 400, pentecost.EVALIDATIONBODY)
		}
		resp := ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: `{"username":"alice","password":"` + testPassword + `"}`})
		MustError(t, resp, 429, pentecost.ERATELIMIT)
	})

	t.Run("ErrRateLimitExceeded", func(t *testing.T) {
		ts.Clock.Add(time.Minute)
		limit := phttp.DefaultLimits().LoginAttemptsPerMinute
		if limit.Events != 10 || limit.Per != time.Minute {
			t.Fatalf("default login limit = %+v", limit)
		}
		c := ts.Client(t, "")
		for i := 0; i < limit.Events; i++ {
			_, err := c.Login(ctx, "alice", "wrong password")
			MustCode(t, err, pentecost.EAUTHCREDENTIALS)
		}
		// Even the right password is refused now: every attempt counts.
		resp := ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: `{"username":"alice","password":"` + testPassword + `"}`})
		e := MustError(t, resp, 429, pentecost.ERATELIMIT)
		if e.RetryAfter != 60 || resp.Header.Get("Retry-After") != "60" {
			t.Fatalf("retryAfter %d, header %q", e.RetryAfter, resp.Header.Get("Retry-After"))
		}
		ts.Clock.Add(time.Minute)
		if _, err := c.Login(ctx, "alice", testPassword); err != nil {
			t.Fatalf("after a minute: %v", err)
		}
	})
}

// TestLogin_DeviceCookie checks the cookie a sign-in leaves: Secure when
// the browser used HTTPS, directly or through a trusted proxy that says so,
// and a budget of its own for that browser.
func TestLogin_DeviceCookie(t *testing.T) {
	ctx := context.Background()
	body := `{"username":"alice","password":"` + testPassword + `"}`
	device := func(t *testing.T, resp *Response) *http.Cookie {
		t.Helper()
		if resp.Status != 200 {
			t.Fatalf("status %d body %s", resp.Status, resp.Body)
		}
		for _, c := range (&http.Response{Header: resp.Header}).Cookies() {
			if c.Name == "pentecost_device" {
				return c
			}
		}
		t.Fatalf("no device cookie in %q", resp.Header.Values("Set-Cookie"))
		return nil
	}

	t.Run("Secure", func(t *testing.T) {
		for _, tt := range []struct {
			name    string
			trusted bool
			proto   string
			secure  bool
		}{
			{"PlainHTTP", true, "", false},
			{"TrustedProxyHTTPS", true, "https", true},
			{"TrustedProxyChain", true, "HTTPS, http", true},
			{"TrustedProxyHTTP", true, "http", false},
			{"UntrustedPeerSaysHTTPS", false, "https", false},
		} {
			t.Run(tt.name, func(t *testing.T) {
				ts := MustOpenServer(t, func(s *phttp.Server) {
					if tt.trusted {
						s.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
					}
				})
				if _, err := ts.Accounts.Add(ctx, "alice", testPassword); err != nil {
					t.Fatal(err)
				}
				h := map[string]string{}
				if tt.proto != "" {
					h["X-Forwarded-Proto"] = tt.proto
				}
				c := device(t, ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: body, Header: h}))
				if c.Secure != tt.secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
					t.Fatalf("cookie %v: want Secure %v, HttpOnly, SameSite=Strict", c, tt.secure)
				}
			})
		}
	})

	// Accounts that cannot look accounts up without a password still
	// honour the cookie: guessing at the account does not lock it out.
	t.Run("OK/AccountsWithoutFind", func(t *testing.T) {
		ts := MustOpenServer(t, func(s *phttp.Server) { s.Accounts = passwordsOnly{s.Accounts} })
		if _, err := ts.Accounts.Add(ctx, "alice", testPassword); err != nil {
			t.Fatal(err)
		}
		c := device(t, ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: body}))
		// The sign-in above and these guesses use up the account's burst.
		burst := phttp.DefaultLimits().LoginAttemptsPerAccount.Burst
		for i := range burst.Events - 1 {
			resp := ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: fmt.Sprintf(`{"username":"alice","password":"guess %d"}`, i)})
			MustError(t, resp, 401, pentecost.EAUTHCREDENTIALS)
		}
		resp := ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: body})
		MustError(t, resp, 429, pentecost.ERATELIMIT)
		device(t, ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: body, Header: map[string]string{"Cookie": c.Name + "=" + c.Value}}))
	})
}

// passwordsOnly is a PasswordAuthenticator with nothing else.
type passwordsOnly struct {
	pentecost.PasswordAuthenticator
}

func TestLogin_Disabled(t *testing.T) {
	ts := MustOpenServer(t, func(s *phttp.Server) { s.Accounts, s.Issuer = nil, nil })
	resp := ts.Do(t, Request{Method: "POST", Path: "/auth/login", Body: `{"username":"alice","password":"` + testPassword + `"}`})
	MustError(t, resp, 404, pentecost.ENOTFOUND)
}

// TestAuth_ProviderUnavailable uses an external issuer whose key endpoint
// is down: its tokens are refused with 503, not 401.
func TestAuth_ProviderUnavailable(t *testing.T) {
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer jwks.Close()

	const iss = "https://id.test"
	oidc := auth.NewOIDC(auth.OIDCConfig{Name: "corp", Issuer: iss, JWKSURL: jwks.URL, ClientID: "pentecost"})
	oidc.HTTPTimeout = 2 * time.Second
	if err := oidc.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer oidc.Close()

	ts := MustOpenServer(t, func(s *phttp.Server) { s.Verifier = auth.NewVerifier(nil, oidc) })

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": iss, "sub": "u1", "aud": "pentecost",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	resp := ts.Do(t, Request{Method: "GET", Path: "/sessions", Token: signed})
	MustError(t, resp, 503, pentecost.EAUTHUNAVAILABLE)
	if strings.Contains(ts.Logs.String(), signed) {
		t.Fatal("token in logs")
	}
}
