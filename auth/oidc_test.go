package auth_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	"golang.org/x/time/rate"
)

// fixture is one embedded issuer and one OIDC issuer behind a Verifier.
type fixture struct {
	rsa, ec  signingKey
	jwks     *jwksServer
	oidc     *auth.OIDC
	embedded *auth.Embedded
	verifier *auth.Verifier
	logs     *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{rsa: newRSAKey(t, "rsa-1"), ec: newECKey(t, "ec-1"), logs: &syncBuffer{}}
	f.jwks = newJWKSServer(t, f.rsa, f.ec)
	f.oidc = openOIDC(t, f.jwks.URL, func(o *auth.OIDC) { o.UnknownKIDLimiter = noRefetch() })
	f.embedded = auth.NewEmbedded(newEd25519Key(t))
	f.verifier = auth.NewVerifier(f.embedded, f.oidc)
	f.verifier.Logger = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return f
}

func TestOIDC_VerifyToken(t *testing.T) {
	f := newFixture(t)
	now := time.Now()

	t.Run("OK", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			token    string
			wantName string
		}{
			{"IDTokenRS256", f.rsa.sign(t, idClaims(now)), "ada@example.com"},
			{"IDTokenES256", f.ec.sign(t, idClaims(now)), "ada@example.com"},
			{"AccessTokenWithClientID", f.rsa.sign(t, accessClaims(now)), "ada"},
			{"AudienceList", f.rsa.sign(t, with(idClaims(now), map[string]any{"aud": []string{"other", testClientID}})), "ada@example.com"},
			{"NameClaimFirst", f.rsa.sign(t, with(idClaims(now), map[string]any{"name": "Ada L."})), "Ada L."},
			{"CognitoUsername", f.rsa.sign(t, with(idClaims(now), map[string]any{"email": nil, "cognito:username": "ada-c"})), "ada-c"},
			{"PreferredUsername", f.rsa.sign(t, with(idClaims(now), map[string]any{"email": nil, "preferred_username": "ada-p"})), "ada-p"},
			{"SubjectFallback", f.rsa.sign(t, with(idClaims(now), map[string]any{"email": nil})), "user-42"},
			{"WithinLeeway", f.rsa.sign(t, with(idClaims(now), map[string]any{"exp": now.Add(-10 * time.Second).Unix()})), "ada@example.com"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for via, tv := range map[string]pentecost.TokenVerifier{"Direct": f.oidc, "Verifier": f.verifier} {
					u, err := tv.VerifyToken(t.Context(), tc.token)
					if err != nil {
						t.Fatalf("%s: %v (reason %q)", via, err, auth.Reason(err))
					}
					want := pentecost.User{ID: "corp:user-42", Name: tc.wantName, Issuer: "corp"}
					if *u != want {
						t.Fatalf("%s: user = %+v, want %+v", via, *u, want)
					}
				}
			})
		}
	})
}

// TestRejections runs every bad token through its issuer directly and
// through the Verifier; each must fail with the expected code.
func TestRejections(t *testing.T) {
	f := newFixture(t)
	now := time.Now()

	pubDER, err := x509.MarshalPKIXPublicKey(f.rsa.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hmacWithPublicKey := jwt.NewWithClaims(jwt.SigningMethodHS256, idClaims(now))
	hmacWithPublicKey.Header["kid"] = f.rsa.kid
	confused, err := hmacWithPublicKey.SignedString(rsaPubPEM)
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := jwt.NewWithClaims(jwt.SigningMethodNone, idClaims(now)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	rs384 := signingKey{kid: f.rsa.kid, method: jwt.SigningMethodRS384, priv: f.rsa.priv}
	impostor := newRSAKey(t, f.rsa.kid) // another key under a known kid

	goodEmbedded, err := f.embedded.IssueToken(t.Context(), &pentecost.User{ID: "ada", Name: "ada"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherEd := auth.NewEmbedded(newEd25519Key(t))
	forgedEmbedded, err := otherEd.IssueToken(t.Context(), &pentecost.User{ID: "ada", Name: "ada"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Same key id as the real issuer, still the wrong key.
	sameKID := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": auth.DefaultIssuer, "aud": auth.DefaultAudience, "sub": "ada",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	sameKID.Header["kid"] = f.embedded.KeyID()
	forgedSameKID, err := sameKID.SignedString(otherEd.Key)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(goodEmbedded, ".")
	tampered := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))

	for _, tc := range []struct {
		name     string
		embedded bool // the issuer to call directly
		token    string
		code     string
	}{
		{"NoToken", false, "", pentecost.EAUTHREQUIRED},
		{"AlgNone", false, unsigned, pentecost.EAUTHINVALID},
		{"HS256WithRSAPublicKey", false, confused, pentecost.EAUTHINVALID},
		{"AlgNotPinned", false, rs384.sign(t, idClaims(now)), pentecost.EAUTHINVALID},
		{"WrongIssuer", false, f.rsa.sign(t, with(idClaims(now), map[string]any{"iss": "https://evil.test"})), pentecost.EAUTHINVALID},
		{"NoIssuer", false, f.rsa.sign(t, with(idClaims(now), map[string]any{"iss": nil})), pentecost.EAUTHINVALID},
		{"WrongAudience", false, f.rsa.sign(t, with(idClaims(now), map[string]any{"aud": "other-client"})), pentecost.EAUTHINVALID},
		{"NoAudience", false, f.rsa.sign(t, with(idClaims(now), map[string]any{"aud": nil})), pentecost.EAUTHINVALID},
		{"AccessTokenWrongClientID", false, f.rsa.sign(t, with(accessClaims(now), map[string]any{"client_id": "other-client"})), pentecost.EAUTHINVALID},
		{"AccessTokenNoClientID", false, f.rsa.sign(t, with(accessClaims(now), map[string]any{"client_id": nil, "aud": testClientID})), pentecost.EAUTHINVALID},
		{"WrongTokenUse", false, f.rsa.sign(t, with(idClaims(now), map[string]any{"token_use": "refresh"})), pentecost.EAUTHINVALID},
		{"NoTokenUse", false, f.rsa.sign(t, with(idClaims(now), map[string]any{"token_use": nil})), pentecost.EAUTHINVALID},
		{"Expired", false, f.rsa.sign(t, with(idClaims(now), map[string]any{"exp": now.Add(-time.Hour).Unix()})), pentecost.EAUTHINVALID},
		{"NoExpiry", false, f.rsa.sign(t, with(idClaims(now), map[string]any{"exp": nil})), pentecost.EAUTHINVALID},
		{"NotYetValid", false, f.rsa.sign(t, with(idClaims(now), map[string]any{"nbf": now.Add(time.Hour).Unix()})), pentecost.EAUTHINVALID},
		{"IssuedInFuture", false, f.rsa.sign(t, with(idClaims(now), map[string]any{"iat": now.Add(time.Hour).Unix()})), pentecost.EAUTHINVALID},
		{"NoSubject", false, f.rsa.sign(t, with(idClaims(now), map[string]any{"sub": nil})), pentecost.EAUTHINVALID},
		{"BadSignatureSameKID", false, impostor.sign(t, idClaims(now)), pentecost.EAUTHINVALID},
		{"UnknownKIDNoRefetchLeft", false, newRSAKey(t, "rsa-unknown").sign(t, idClaims(now)), pentecost.EAUTHINVALID},
		{"EmbeddedOtherKey", true, forgedEmbedded, pentecost.EAUTHINVALID},
		{"EmbeddedOtherKeySameKID", true, forgedSameKID, pentecost.EAUTHINVALID},
		{"EmbeddedTamperedSignature", true, tampered, pentecost.EAUTHINVALID},
		{"Garbage", false, "garbage", pentecost.EAUTHINVALID},
		{"ThreeDots", false, "a.b.c", pentecost.EAUTHINVALID},
		{"EmptySegments", false, "..", pentecost.EAUTHINVALID},
		{"BinaryJunk", false, "\x00\xff.\x01.\x02", pentecost.EAUTHINVALID},
		{"Huge", false, strings.Repeat("a", 64<<10), pentecost.EAUTHINVALID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var direct pentecost.TokenVerifier = f.oidc
			if tc.embedded {
				direct = f.embedded
			}
			t.Run("Direct", func(t *testing.T) {
				u, err := direct.VerifyToken(t.Context(), tc.token)
				wantCode(t, err, tc.code)
				if u != nil {
					t.Fatalf("user = %+v, want nil", u)
				}
			})
			t.Run("Verifier", func(t *testing.T) {
				u, err := f.verifier.VerifyToken(t.Context(), tc.token)
				wantCode(t, err, tc.code)
				if u != nil {
					t.Fatalf("user = %+v, want nil", u)
				}
				if msg := pentecost.ErrorMessage(err); tc.code == pentecost.EAUTHINVALID && msg != "Invalid or expired token." {
					t.Fatalf("message = %q, want the generic one", msg)
				}
			})
		})
	}

	t.Run("LogsReasonNotToken", func(t *testing.T) {
		logs := f.logs.String()
		if !strings.Contains(logs, "reason=") {
			t.Fatalf("no reason logged:\n%s", logs)
		}
		for _, secret := range []string{confused, forgedEmbedded, tampered} {
			if strings.Contains(logs, secret) {
				t.Fatal("a token was logged")
			}
		}
	})
}

// TestOIDC_UnknownKID checks that forged key ids cause a bounded number of
// refetches and never make a healthy issuer look unavailable.
func TestOIDC_UnknownKID(t *testing.T) {
	rsaKey := newRSAKey(t, "rsa-1")
	jwks := newJWKSServer(t, rsaKey)
	o := openOIDC(t, jwks.URL) // default limiter
	v := auth.NewVerifier(nil, o)
	before := jwks.fetches.Load()

	now := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		token := newECKey(t, fmt.Sprintf("forged-%d", i)).sign(t, idClaims(now))
		wg.Go(func() { _, errs[i] = v.VerifyToken(t.Context(), token) })
	}
	wg.Wait()
	for _, err := range errs {
		wantCode(t, err, pentecost.EAUTHINVALID)
	}
	if n := jwks.fetches.Load() - before; n < 1 || n > 2 {
		t.Fatalf("JWKS fetched %d times for 20 unknown kids, want 1 or 2", n)
	}
	// The real key still works.
	if _, err := v.VerifyToken(t.Context(), rsaKey.sign(t, idClaims(now))); err != nil {
		t.Fatal(err)
	}
}

func TestOIDC_KeyRotation(t *testing.T) {
	oldKey, newKey := newRSAKey(t, "2024"), newRSAKey(t, "2025")
	jwks := newJWKSServer(t, oldKey)
	o := openOIDC(t, jwks.URL)
	now := time.Now()

	oldToken := oldKey.sign(t, idClaims(now))
	if _, err := o.VerifyToken(t.Context(), oldToken); err != nil {
		t.Fatal(err)
	}

	jwks.setKeys(newKey)
	before := jwks.fetches.Load()
	u, err := o.VerifyToken(t.Context(), newKey.sign(t, idClaims(now)))
	if err != nil {
		t.Fatalf("new key refused: %v (%s)", err, auth.Reason(err))
	}
	if u.ID != "corp:user-42" {
		t.Fatalf("ID = %q", u.ID)
	}
	if n := jwks.fetches.Load() - before; n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
	// The refetch replaced the cache: the withdrawn key no longer verifies.
	_, err = o.VerifyToken(t.Context(), oldToken)
	wantCode(t, err, pentecost.EAUTHINVALID)
}

func TestOIDC_Unavailable(t *testing.T) {
	now := time.Now()

	t.Run("ErrServerError", func(t *testing.T) {
		key := newRSAKey(t, "k1")
		jwks := newJWKSServer(t, key)
		jwks.fail.Store(true)
		o := openOIDC(t, jwks.URL, func(o *auth.OIDC) { o.RetryLimiter = rate.NewLimiter(rate.Inf, 1) })
		embedded := auth.NewEmbedded(newEd25519Key(t))
		v := auth.NewVerifier(embedded, o)

		token := key.sign(t, idClaims(now))
		for _, tv := range []pentecost.TokenVerifier{o, v} {
			_, err := tv.VerifyToken(t.Context(), token)
			wantCode(t, err, pentecost.EAUTHUNAVAILABLE)
			if msg := pentecost.ErrorMessage(err); msg != "Sign-in is temporarily unavailable." {
				t.Fatalf("message = %q", msg)
			}
		}
		// Embedded speakers are unaffected.
		et, err := embedded.IssueToken(t.Context(), &pentecost.User{ID: "ada", Name: "ada"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.VerifyToken(t.Context(), et); err != nil {
			t.Fatal(err)
		}
		// Bad tokens are still bad rather than "unavailable" when their
		// algorithm alone rules them out.
		unsigned, _ := jwt.NewWithClaims(jwt.SigningMethodNone, idClaims(now)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		_, err = v.VerifyToken(t.Context(), unsigned)
		wantCode(t, err, pentecost.EAUTHINVALID)

		// The issuer recovers on the next allowed retry.
		jwks.fail.Store(false)
		if _, err := v.VerifyToken(t.Context(), token); err != nil {
			t.Fatalf("after recovery: %v (%s)", err, auth.Reason(err))
		}
	})

	t.Run("ErrServerClosed", func(t *testing.T) {
		key := newRSAKey(t, "k1")
		jwks := newJWKSServer(t, key)
		jwks.Close()
		o := openOIDC(t, jwks.URL)
		_, err := o.VerifyToken(t.Context(), key.sign(t, idClaims(now)))
		wantCode(t, err, pentecost.EAUTHUNAVAILABLE)
	})

	t.Run("RetriesBounded", func(t *testing.T) {
		key := newRSAKey(t, "k1")
		jwks := newJWKSServer(t, key)
		jwks.fail.Store(true)
		o := openOIDC(t, jwks.URL) // default retry limiter
		before := jwks.fetches.Load()
		for range 10 {
			_, err := o.VerifyToken(t.Context(), key.sign(t, idClaims(now)))
			wantCode(t, err, pentecost.EAUTHUNAVAILABLE)
		}
		if n := jwks.fetches.Load() - before; n < 1 || n > 2 {
			t.Fatalf("JWKS fetched %d times for 10 tokens while down, want 1 or 2", n)
		}
	})

	t.Run("StaleKeysKeepWorking", func(t *testing.T) {
		key := newRSAKey(t, "k1")
		jwks := newJWKSServer(t, key)
		o := openOIDC(t, jwks.URL)
		jwks.fail.Store(true)
		// An unknown kid makes it refetch, which fails; the cache stays.
		_, err := o.VerifyToken(t.Context(), newRSAKey(t, "k2").sign(t, idClaims(now)))
		wantCode(t, err, pentecost.EAUTHINVALID)
		if _, err := o.VerifyToken(t.Context(), key.sign(t, idClaims(now))); err != nil {
			t.Fatalf("cached key refused: %v (%s)", err, auth.Reason(err))
		}
	})

	t.Run("ErrNotOpened", func(t *testing.T) {
		key := newRSAKey(t, "k1")
		o := auth.NewOIDC(testOIDCConfig("https://127.0.0.1:1/jwks"))
		_, err := o.VerifyToken(t.Context(), key.sign(t, idClaims(now)))
		wantCode(t, err, pentecost.EAUTHUNAVAILABLE)
	})
}

func TestOIDC_Open(t *testing.T) {
	t.Run("ErrInvalidConfig", func(t *testing.T) {
		cfg := testOIDCConfig("ftp://127.0.0.1/jwks")
		if err := auth.NewOIDC(cfg).Open(t.Context()); err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("ErrAlreadyOpen", func(t *testing.T) {
		o := openOIDC(t, newJWKSServer(t, newRSAKey(t, "k")).URL)
		if err := o.Open(t.Context()); err == nil {
			t.Fatal("want an error")
		}
	})
}

// TestVerifier_DuplicateIssuerName: user IDs are "<issuer name>:<sub>", so
// a second issuer with the name of the first is not used: its users would
// otherwise become the first issuer's users with the same sub.
func TestVerifier_DuplicateIssuerName(t *testing.T) {
	first, second := newRSAKey(t, "rsa-1"), newRSAKey(t, "rsa-2")
	a := openOIDC(t, newJWKSServer(t, first).URL)
	b := openOIDC(t, newJWKSServer(t, second).URL, func(o *auth.OIDC) { o.Config.Issuer = "https://id.test/pool-2" })
	v := auth.NewVerifier(nil, a, b)

	now := time.Now()
	if u, err := v.VerifyToken(t.Context(), first.sign(t, idClaims(now))); err != nil || u.ID != "corp:user-42" {
		t.Fatalf("first issuer's token: %v, %v", u, err)
	}
	_, err := v.VerifyToken(t.Context(), second.sign(t, with(idClaims(now), map[string]any{"iss": "https://id.test/pool-2"})))
	wantCode(t, err, pentecost.EAUTHINVALID)
}
