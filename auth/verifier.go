package auth

import (
	"context"
	"log/slog"

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
// the first wins and the other is not used.
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

var _ pentecost.TokenVerifier = (*Verifier)(nil)
