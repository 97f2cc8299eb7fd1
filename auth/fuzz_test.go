package auth_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
)

// FuzzVerifier feeds arbitrary bearer tokens to a Verifier: it must never
// panic, never accept one, and only answer with the documented codes.
func FuzzVerifier(f *testing.F) {
	e := auth.NewEmbedded(newEd25519Key(f))
	good, err := e.IssueToken(f.Context(), &pentecost.User{ID: "ada", Name: "ada"}, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"", "garbage", "a.b.c", "..", good, good[:len(good)-2], good + "x"} {
		f.Add(seed)
	}
	other := auth.NewEmbedded(newEd25519Key(f)) // the fuzzer cannot hold this key
	v := auth.NewVerifier(other)
	f.Fuzz(func(t *testing.T, token string) {
		u, err := v.VerifyToken(t.Context(), token)
		if err == nil || u != nil {
			t.Fatalf("token accepted: %q", token)
		}
		switch code := pentecost.ErrorCode(err); code {
		case pentecost.EAUTHREQUIRED, pentecost.EAUTHINVALID:
		default:
			t.Fatalf("code %q for %q", code, token)
		}
	})
}

// signed returns header.claims.signature, signed by method with key
// exactly as given: the fuzzer writes the JSON, the test holds the key.
func signed(t *testing.T, method jwt.SigningMethod, key any, header, claims []byte) string {
	t.Helper()
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	sig, err := method.Sign(input, key)
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// mustBeStrict fails the test unless an accepted token's header and claims
// are what a bearer token must be: no crit, a JWT or access-token typ if
// any, the issuer's exact iss, a subject, and exp (with nbf and iat if
// present) a JSON number, every claim name in its own case.
func mustBeStrict(t *testing.T, header, claims []byte, iss string) {
	t.Helper()
	var h map[string]any
	if err := json.Unmarshal(header, &h); err != nil {
		t.Fatalf("accepted a header that is not a JSON object: %q", header)
	}
	if _, ok := h["crit"]; ok {
		t.Fatalf("accepted a crit header: %q", header)
	}
	if typ, ok := h["typ"]; ok {
		s, _ := typ.(string)
		switch strings.ToLower(s) {
		case "jwt", "application/jwt", "at+jwt", "application/at+jwt":
		default:
			t.Fatalf("accepted typ %v: %q", typ, header)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(claims))
	dec.UseNumber()
	var c map[string]any
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("accepted claims that are not a JSON object: %q", claims)
	}
	if c["iss"] != iss {
		t.Fatalf("accepted iss %v: %q", c["iss"], claims)
	}
	if sub, _ := c["sub"].(string); sub == "" {
		t.Fatalf("accepted no subject: %q", claims)
	}
	if _, ok := c["exp"].(json.Number); !ok {
		t.Fatalf("accepted exp %#v: %q", c["exp"], claims)
	}
	for _, name := range []string{"nbf", "iat"} {
		if v, ok := c[name]; ok {
			if _, ok := v.(json.Number); !ok {
				t.Fatalf("accepted %s %#v: %q", name, v, claims)
			}
		}
	}
	for key := range c {
		for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "token_use", "client_id"} {
			if key != name && strings.EqualFold(key, name) {
				t.Fatalf("accepted claim %q for %q: %q", key, name, claims)
			}
		}
	}
}

// FuzzEmbeddedSigned feeds validly signed tokens with arbitrary header and
// claims to the embedded issuer: whatever it accepts must be strict (see
// mustBeStrict), and it refuses only with the documented codes. The seeds
// hold the attacks of issue 13: a crit header, exp as a string, odd typ
// values and claim names in another case.
func FuzzEmbeddedSigned(f *testing.F) {
	e := auth.NewEmbedded(newEd25519Key(f))
	now := time.Now().Unix()
	header := `{"alg":"EdDSA","kid":"` + e.KeyID() + `","typ":"JWT"}`
	claims := fmt.Sprintf(`{"iss":"pentecost","aud":["pentecost"],"sub":"ada","iat":%d,"nbf":%d,"exp":%d}`, now, now, now+3600)
	for _, seed := range [][2]string{
		{header, claims},
		{`{"alg":"EdDSA","kid":"` + e.KeyID() + `","typ":"JWT","crit":["x-pop"],"x-pop":true}`, claims},
		{`{"alg":"EdDSA","kid":"` + e.KeyID() + `","typ":"logout+jwt"}`, claims},
		{`{"alg":"EdDSA","kid":"` + e.KeyID() + `","typ":7}`, claims},
		{`{"alg":"EdDSA","kid":"` + e.KeyID() + `"}`, claims},
		{header, strings.Replace(claims, fmt.Sprintf(`"exp":%d`, now+3600), fmt.Sprintf(`"exp":"%d"`, now+3600), 1)},
		{header, strings.Replace(claims, `"exp"`, `"EXP"`, 1)},
		{header, strings.Replace(claims, `"sub"`, `"ſub"`, 1)},
	} {
		f.Add([]byte(seed[0]), []byte(seed[1]))
	}
	f.Fuzz(func(t *testing.T, header, claims []byte) {
		token := signed(t, jwt.SigningMethodEdDSA, e.Key, header, claims)
		u, err := e.VerifyToken(t.Context(), token)
		if err != nil {
			switch code := pentecost.ErrorCode(err); code {
			case pentecost.EAUTHINVALID, pentecost.EAUTHREQUIRED:
			default:
				t.Fatalf("code %q for %q", code, token)
			}
			return
		}
		if u == nil || u.ID == "" {
			t.Fatalf("accepted without a user: %q", token)
		}
		mustBeStrict(t, header, claims, e.Issuer)
	})
}

// FuzzOIDCSigned is FuzzEmbeddedSigned for an external issuer whose key
// the test serves on a loopback JWKS endpoint.
func FuzzOIDCSigned(f *testing.F) {
	key := newECKey(f, "k1")
	o := openOIDC(f, newJWKSServer(f, key).URL, func(o *auth.OIDC) {
		o.UnknownKIDLimiter, o.RetryLimiter = noRefetch(), noRefetch()
	})
	now := time.Now().Unix()
	header := `{"alg":"ES256","kid":"k1","typ":"JWT"}`
	claims := fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"u1","token_use":"id","iat":%d,"exp":%d}`, testIssuer, testClientID, now, now+3600)
	for _, seed := range [][2]string{
		{header, claims},
		{`{"alg":"ES256","kid":"k1","crit":["b64"],"b64":false}`, claims},
		{`{"alg":"ES256","kid":"k1","typ":"at+jwt"}`, claims},
		{`{"alg":"ES256","kid":"k1","typ":"secevent+jwt"}`, claims},
		{`{"alg":"ES256","kid":"k1"}`, claims},
		{header, strings.Replace(claims, fmt.Sprintf(`"exp":%d`, now+3600), fmt.Sprintf(`"exp":"%d"`, now+3600), 1)},
		{header, strings.Replace(claims, `"token_use"`, `"Token_Use"`, 1)},
		{header, strings.Replace(claims, `"iat"`, `"Iat"`, 1)},
	} {
		f.Add([]byte(seed[0]), []byte(seed[1]))
	}
	f.Fuzz(func(t *testing.T, header, claims []byte) {
		token := signed(t, jwt.SigningMethodES256, key.priv, header, claims)
		u, err := o.VerifyToken(t.Context(), token)
		if err != nil {
			switch code := pentecost.ErrorCode(err); code {
			case pentecost.EAUTHINVALID, pentecost.EAUTHREQUIRED:
			default:
				t.Fatalf("code %q for %q", code, token)
			}
			return
		}
		if u == nil || !strings.HasPrefix(u.ID, "corp:") {
			t.Fatalf("accepted as %v: %q", u, token)
		}
		mustBeStrict(t, header, claims, testIssuer)
	})
}
