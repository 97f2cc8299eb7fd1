package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pentecost/pentecost"
)

// Verifier verifies a bearer token with the issuer that claims to have
// signed it: the embedded issuer or one of the external OIDC issuers.
type Verifier struct {
	// Logger receives the real reason of every refusal (never the token),
	// with the correlation ID of the request when ctx carries one.
	Logger *slog.Logger

	byIssuer map[string]pentecost.TokenVerifier
	names    map[string]string // iss claim -> issuer name for logs
}

// NewVerifier returns a Verifier routing to embedded (may be nil) and the
// given external issuers. Should two share an iss value, or a name (user
// IDs are "<name>:<sub>", so a shared name would merge two issuers' users),
// the first wins and the other is not used: check the configuration with
// CheckIssuers first, so that such a clash stops the program instead.
func NewVerifier(embedded *Embedded, issuers ...*OIDC) *Verifier {
	v := &Verifier{
		Logger:   slog.New(slog.DiscardHandler),
		byIssuer: make(map[string]pentecost.TokenVerifier),
		names:    make(map[string]string),
	}
	if embedded != nil {
		v.add(embedded.Issuer, pentecost.EmbeddedIssuer, embedded)
	}
	for _, o := range issuers {
		v.add(o.Config.Issuer, o.Config.Name, o)
	}
	return v
}

func (v *Verifier) add(iss, name string, tv pentecost.TokenVerifier) {
	if _, ok := v.byIssuer[iss]; ok {
		return
	}
	for _, n := range v.names {
		if n == name {
			return
		}
	}
	v.byIssuer[iss] = tv
	v.names[iss] = name
}

// VerifyToken implements pentecost.TokenVerifier. Every bad token gets the
// same EAUTHINVALID message; the reason is logged.
func (v *Verifier) VerifyToken(ctx context.Context, token string) (*pentecost.User, error) {
	u, name, err := v.verify(ctx, token)
	if err != nil {
		code := pentecost.ErrorCode(err)
		level := slog.LevelInfo
		if code != pentecost.EAUTHINVALID && code != pentecost.EAUTHREQUIRED {
			level = slog.LevelWarn
		}
		attrs := []slog.Attr{
			slog.String(logKeyCode, code),
			slog.String(logKeyIssuer, name),
			slog.String(logKeyReason, reasonOf(err)),
		}
		if id := pentecost.CorrelationIDFromContext(ctx); id != "" {
			attrs = append(attrs, slog.String(logKeyCorrelationID, id))
		}
		v.Logger.LogAttrs(ctx, level, "Token refused.", attrs...)
		return nil, err
	}
	return u, nil
}

func (v *Verifier) verify(ctx context.Context, token string) (*pentecost.User, string, error) {
	if token == "" {
		return nil, "", tokenRequired()
	} else if len(token) > maxTokenLength {
		return nil, "", invalid("token too long")
	}
	// The unverified claims are read only to pick the issuer; the chosen
	// issuer then verifies everything from scratch.
	var claims jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &claims); err != nil {
		return nil, "", invalid("unparsable token: %v", err)
	}
	tv, ok := v.byIssuer[claims.Issuer]
	if !ok || claims.Issuer == "" {
		return nil, "", invalid("unknown issuer")
	}
	u, err := tv.VerifyToken(ctx, token)
	return u, v.names[claims.Issuer], err
}

// reasonOf is Reason, falling back to the error text for errors that did
// not come from a token check (a store failure, say).
func reasonOf(err error) string {
	if r := Reason(err); r != "" {
		return r
	}
	return err.Error()
}

// CheckIssuers explains the first reason why NewVerifier could not use
// every one of the given issuers: an invalid configuration, an external
// issuer whose iss is the embedded issuer's (embedded may be nil), or two
// issuers sharing an iss or a name.
func CheckIssuers(embedded *Embedded, configs ...OIDCConfig) error {
	iss, names := map[string]string{}, map[string]bool{}
	if embedded != nil {
		iss[embedded.Issuer] = pentecost.EmbeddedIssuer
		names[pentecost.EmbeddedIssuer] = true
	}
	for _, c := range configs {
		if err := c.Validate(); err != nil {
			return err
		}
		if other, ok := iss[c.Issuer]; ok && other == pentecost.EmbeddedIssuer {
			return fmt.Errorf("OIDC issuer %q: issuer %q is the iss of Pentecost's own tokens; its tokens could never reach it (give the issuer's exact iss claim)", c.Name, c.Issuer)
		} else if ok {
			return fmt.Errorf("OIDC issuers %q and %q have the same issuer %q; tokens could reach only one of them", other, c.Name, c.Issuer)
		}
		if names[c.Name] {
			return fmt.Errorf("two OIDC issuers are named %q: user IDs (%s:<sub>) would collide; give each its own name", c.Name, c.Name)
		}
		iss[c.Issuer], names[c.Name] = c.Name, true
	}
	return nil
}

// acceptedTypes are the typ header values accepted, lower-cased: a JWT or
// an OAuth access token (RFC 9068), with or without "application/" (RFC
// 7515 §4.1.9). Any other type is another kind of JWT, such as a logout
// token or a security event, that must not pass for a bearer token (RFC
// 8725 §3.11). Most issuers write "JWT" or nothing.
var acceptedTypes = map[string]bool{
	"jwt": true, "application/jwt": true,
	"at+jwt": true, "application/at+jwt": true,
}

// numericClaims must be JSON numbers (RFC 7519's NumericDate): golang-jwt
// also takes a string holding a number.
var numericClaims = []string{"exp", "nbf", "iat"}

// exactClaims are the claims whose checks matter. encoding/json matches
// object keys to them regardless of case ("EXP", even "ſub"), where JWT
// claim names are case-sensitive: a key that matches one only so is refused.
var exactClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "token_use", "client_id"}

// checkStrict refuses what golang-jwt would let through: a crit header
// (RFC 7515 §4.1.11: none of its extensions is understood here, so any is
// refused), a typ naming another kind of token, a time claim that is not a
// number, and a claim name in the wrong case. It checks form only; the
// issuer then verifies the signature and the claims' values.
func checkStrict(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("not three segments")
	}
	var header map[string]json.RawMessage
	if err := decodeSegment(parts[0], &header); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if _, ok := header["crit"]; ok {
		return errors.New("crit header present; no extension is understood")
	}
	if raw, ok := header["typ"]; ok {
		var typ string
		if err := json.Unmarshal(raw, &typ); err != nil {
			return errors.New("typ header is not a string")
		}
		if !acceptedTypes[strings.ToLower(typ)] {
			return fmt.Errorf("typ %.40q not accepted", typ)
		}
	}
	var claims map[string]json.RawMessage
	if err := decodeSegment(parts[1], &claims); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	for key := range claims {
		for _, name := range exactClaims {
			if key != name && strings.EqualFold(key, name) {
				return fmt.Errorf("claim %.40q spelled unlike %q", key, name)
			}
		}
	}
	for _, name := range numericClaims {
		if raw, ok := claims[name]; ok && !isJSONNumber(raw) {
			return fmt.Errorf("claim %s is not a number", name)
		}
	}
	return nil
}

// decodeSegment decodes one base64url segment holding a JSON object.
func decodeSegment(seg string, v *map[string]json.RawMessage) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(b, v); err != nil || *v == nil {
		return errors.New("not a JSON object")
	}
	return nil
}

// isJSONNumber reports whether raw, a valid JSON value, is a number.
func isJSONNumber(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}

var _ pentecost.TokenVerifier = (*Verifier)(nil)
