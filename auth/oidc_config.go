package auth

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/pentecost/pentecost"
)

// Token uses accepted in OIDCConfig.TokenUse (Amazon Cognito's token_use claim).
const (
	TokenUseID     = "id"
	TokenUseAccess = "access"
)

// asymmetricAlgs are the algorithms an external issuer may be pinned to.
// Symmetric (HS*) and "none" are never accepted: a JWKS is public.
var asymmetricAlgs = []string{
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// OIDCConfig describes one external OpenID Connect issuer.
type OIDCConfig struct {
	// Name identifies the issuer in user IDs ("name:sub") and logs.
	Name string
	// Issuer must equal the iss claim exactly.
	Issuer string
	// JWKSURL is where the issuer publishes its signing keys.
	JWKSURL string
	// Audience lists accepted aud values (ID tokens). Empty means ClientID.
	Audience []string
	// ClientID must equal the client_id claim of access tokens (Amazon
	// Cognito access tokens have no aud).
	ClientID string
	// TokenUse lists accepted token_use values ("id", "access"). Empty means
	// the claim is not checked.
	TokenUse []string
	// Algorithms lists accepted signing algorithms. Empty means RS256.
	Algorithms []string
}

// CognitoConfig returns the configuration of an Amazon Cognito user pool
// accepting both ID and access tokens issued to clientID.
func CognitoConfig(region, userPoolID, clientID string) OIDCConfig {
	issuer := "https://cognito-idp." + region + ".amazonaws.com/" + userPoolID
	return OIDCConfig{
		Name:       "cognito",
		Issuer:     issuer,
		JWKSURL:    issuer + "/.well-known/jwks.json",
		Audience:   []string{clientID},
		ClientID:   clientID,
		TokenUse:   []string{TokenUseID, TokenUseAccess},
		Algorithms: []string{"RS256"},
	}
}

// ParseOIDCConfig reads an issuer from a one-line spec of comma-separated
// key=value pairs, lists separated by "|":
//
//	name=corp,issuer=https://id.example.com,jwks=https://id.example.com/keys,audience=abc|def,client_id=abc,token_use=id|access,alg=RS256|ES256
//
// name, issuer and jwks are required. The result is validated.
func ParseOIDCConfig(spec string) (OIDCConfig, error) {
	var c OIDCConfig
	seen := map[string]bool{}
	for _, pair := range strings.Split(spec, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		key, value, ok := strings.Cut(pair, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return OIDCConfig{}, fmt.Errorf("OIDC issuer spec: %q is not key=value", pair)
		}
		if seen[key] {
			return OIDCConfig{}, fmt.Errorf("OIDC issuer spec: %q is given twice", key)
		}
		seen[key] = true
		switch key {
		case "name":
			c.Name = value
		case "issuer":
			c.Issuer = value
		case "jwks":
			c.JWKSURL = value
		case "audience":
			c.Audience = splitList(value)
		case "client_id":
			c.ClientID = value
		case "token_use":
			c.TokenUse = splitList(value)
		case "alg":
			c.Algorithms = splitList(value)
		default:
			return OIDCConfig{}, fmt.Errorf("OIDC issuer spec: unknown key %q (known: name, issuer, jwks, audience, client_id, token_use, alg)", key)
		}
	}
	if err := c.Validate(); err != nil {
		return OIDCConfig{}, err
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, "|") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// Validate checks the configuration and explains the first problem found.
func (c OIDCConfig) Validate() error {
	if c.Name == "" {
		return fmt.Errorf("OIDC issuer: name is required")
	}
	prefix := fmt.Sprintf("OIDC issuer %q", c.Name)
	if len(c.Name) > 32 || strings.IndexFunc(c.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) >= 0 {
		return fmt.Errorf("%s: name may only use letters, digits, '-' and '_' (at most 32)", prefix)
	}
	if strings.EqualFold(c.Name, pentecost.EmbeddedIssuer) {
		return fmt.Errorf("%s: name %q is reserved for Pentecost's own accounts", prefix, c.Name)
	}
	if c.Issuer == "" {
		return fmt.Errorf("%s: issuer is required (the exact iss claim of its tokens)", prefix)
	}
	if c.JWKSURL == "" {
		return fmt.Errorf("%s: jwks URL is required", prefix)
	}
	if err := checkJWKSURL(c.JWKSURL); err != nil {
		return fmt.Errorf("%s: jwks URL: %w", prefix, err)
	}
	for _, alg := range c.Algorithms {
		if !slices.Contains(asymmetricAlgs, alg) {
			return fmt.Errorf("%s: algorithm %q is not accepted (use one of %s)", prefix, alg, strings.Join(asymmetricAlgs, ", "))
		}
	}
	for _, use := range c.TokenUse {
		if use != TokenUseID && use != TokenUseAccess {
			return fmt.Errorf("%s: token_use %q is unknown (use %q or %q)", prefix, use, TokenUseID, TokenUseAccess)
		}
	}
	if slices.Contains(c.TokenUse, TokenUseAccess) && c.ClientID == "" {
		return fmt.Errorf("%s: accepting access tokens needs client_id", prefix)
	}
	if len(c.Audience) == 0 && c.ClientID == "" {
		return fmt.Errorf("%s: an audience or client_id is required", prefix)
	}
	return nil
}

// checkJWKSURL requires https, except on a loopback host.
func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%q must use https (plain http only on a loopback address)", s)
	}
	return fmt.Errorf("%q must use https", s)
}
