package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	"golang.org/x/time/rate"
)

// cheapParams keep argon2id fast in tests; production uses DefaultParams.
var cheapParams = auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLength: 16, KeyLength: 32}

// signingKey is a private key with the kid and alg it signs under.
type signingKey struct {
	kid    string
	method jwt.SigningMethod
	priv   crypto.Signer
}

func newRSAKey(tb testing.TB, kid string) signingKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return signingKey{kid: kid, method: jwt.SigningMethodRS256, priv: k}
}

func newECKey(tb testing.TB, kid string) signingKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return signingKey{kid: kid, method: jwt.SigningMethodES256, priv: k}
}

func newEd25519Key(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// sign returns claims signed by k with its kid in the header.
func (k signingKey) sign(tb testing.TB, claims jwt.MapClaims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(k.method, claims)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// jwksServer is a real JWKS endpoint on loopback serving the public halves
// of its keys. It counts fetches and can be made to fail.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []signingKey
	fail    atomic.Bool
	fetches atomic.Int64
}

func newJWKSServer(tb testing.TB, keys ...signingKey) *jwksServer {
	tb.Helper()
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(keys ...signingKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = keys
}

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.fetches.Add(1)
	if s.fail.Load() {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	keys := s.keys
	s.mu.Unlock()
	var set jwkset.JWKSMarshal
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k.priv.Public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: jwkset.ALG(k.method.Alg()), USE: jwkset.UseSig},
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(set)
}

// Test issuer settings.
const (
	testIssuer   = "https://id.test/pool-1"
	testClientID = "client-1"
)

func testOIDCConfig(jwksURL string) auth.OIDCConfig {
	return auth.OIDCConfig{
		Name:       "corp",
		Issuer:     testIssuer,
		JWKSURL:    jwksURL,
		Audience:   []string{testClientID},
		ClientID:   testClientID,
		TokenUse:   []string{auth.TokenUseID, auth.TokenUseAccess},
		Algorithms: []string{"RS256", "ES256"},
	}
}

// openOIDC opens an issuer against url; limiters never let a forged kid
// refetch unless the test asks for it.
func openOIDC(tb testing.TB, url string, configure ...func(*auth.OIDC)) *auth.OIDC {
	tb.Helper()
	o := auth.NewOIDC(testOIDCConfig(url))
	o.HTTPTimeout = 5 * time.Second
	for _, f := range configure {
		f(o)
	}
	if err := o.Open(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = o.Close() })
	return o
}

// idClaims are valid ID-token claims at now.
func idClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       testIssuer,
		"sub":       "user-42",
		"aud":       testClientID,
		"token_use": "id",
		"email":     "ada@example.com",
		"iat":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
	}
}

// accessClaims are valid Cognito-style access-token claims at now.
func accessClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       testIssuer,
		"sub":       "user-42",
		"client_id": testClientID,
		"token_use": "access",
		"username":  "ada",
		"iat":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
	}
}

// with returns a copy of c with the given changes; a nil value deletes.
func with(c jwt.MapClaims, changes map[string]any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func noRefetch() *rate.Limiter { return rate.NewLimiter(0, 0) }

func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := pentecost.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q, want %q (err: %v, reason: %q)", got, code, err, auth.Reason(err))
	}
}
