package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pentecost/pentecost"
)

// Defaults for the embedded issuer.
const (
	DefaultIssuer   = "pentecost"
	DefaultAudience = "pentecost"
	DefaultLeeway   = 30 * time.Second
)

// embeddedAlg is the only algorithm the embedded issuer signs or accepts.
const embeddedAlg = "EdDSA"

// pemTypePrivateKey is the PEM block type of a PKCS#8 private key.
const pemTypePrivateKey = "PRIVATE KEY"

// LoadOrCreateKey returns the Ed25519 signing key stored at path as a PEM
// PKCS#8 block, creating a new key (file mode 0600, parent directory 0700)
// when the file does not exist.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	key, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}

	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: create directory for signing key: %w", err)
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("auth: encode signing key: %w", err)
	}

	// Written whole to a temporary file, then linked into place: a link
	// fails if another process created the key meanwhile (then its key is
	// used), and nobody ever reads a half-written key, which a crash would
	// otherwise leave to fail every later start.
	f, err := os.CreateTemp(filepath.Dir(path), ".signing-key-*")
	if err != nil {
		return nil, fmt.Errorf("auth: create signing key file: %w", err)
	}
	defer os.Remove(f.Name())
	err = f.Chmod(0o600)
	if err == nil {
		err = pem.Encode(f, &pem.Block{Type: pemTypePrivateKey, Bytes: der})
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("auth: write signing key file: %w", err)
	}
	if err := os.Link(f.Name(), path); errors.Is(err, fs.ErrExist) {
		return loadKey(path)
	} else if err != nil {
		return nil, fmt.Errorf("auth: install signing key file: %w", err)
	}
	return key, nil
}

func loadKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("auth: read signing key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != pemTypePrivateKey {
		return nil, fmt.Errorf("auth: signing key file %s does not hold a PEM %q block", path, pemTypePrivateKey)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key file %s: %w", path, err)
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("auth: signing key file %s holds a %T, want an Ed25519 key", path, parsed)
	}
	return key, nil
}

// Embedded issues and verifies tokens for accounts kept in Pentecost's own
// store. Tokens are signed with Ed25519 (alg EdDSA, nothing else accepted).
type Embedded struct {
	// Key signs tokens; its public half verifies them.
	Key ed25519.PrivateKey
	// Issuer and Audience are written into and required of every token.
	Issuer   string
	Audience string
	// Leeway tolerates clock skew on exp, nbf and iat.
	Leeway time.Duration
	// Now returns the current time.
	Now func() time.Time
	// Users, if set, makes VerifyToken refuse tokens of accounts that have
	// since been removed, and tokens issued before the account's password
	// was last set, and gives the user its role as stored now (at the cost
	// of one store lookup per verification). Without it every user is a
	// speaker: a role is never read from the token, so that a demoted admin
	// loses the role at its next request, not when its tokens expire.
	Users pentecost.UserStore
}

// NewEmbedded returns an embedded issuer signing with key, with defaults.
func NewEmbedded(key ed25519.PrivateKey) *Embedded {
	return &Embedded{
		Key:      key,
		Issuer:   DefaultIssuer,
		Audience: DefaultAudience,
		Leeway:   DefaultLeeway,
		Now:      time.Now,
	}
}

// KeyID returns the key id written in token headers: the first 16 hex digits
// of the SHA-256 of the public key.
func (e *Embedded) KeyID() string {
	pub, _ := e.Key.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// embeddedClaims are the claims of an embedded token.
type embeddedClaims struct {
	jwt.RegisteredClaims
	Name string `json:"name,omitempty"`
}

// IssueToken returns a signed token naming u, valid for ttl.
// Errors: EVALIDATIONFIELD (no user ID, ttl not positive).
func (e *Embedded) IssueToken(ctx context.Context, u *pentecost.User, ttl time.Duration) (string, error) {
	if u == nil || u.ID == "" {
		return "", pentecost.Errorf(pentecost.EVALIDATIONFIELD, "A user is required.")
	}
	if ttl <= 0 {
		return "", pentecost.Errorf(pentecost.EVALIDATIONFIELD, "Token lifetime must be positive.")
	}
	if len(e.Key) != ed25519.PrivateKeySize {
		return "", errors.New("auth: embedded issuer has no signing key")
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", fmt.Errorf("auth: token id: %w", err)
	}
	now := e.Now()
	claims := embeddedClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    e.Issuer,
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{e.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        base64.RawURLEncoding.EncodeToString(jti),
		},
		Name: u.Name,
	}
	token := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	token.Header["kid"] = e.KeyID()
	s, err := token.SignedString(e.Key)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return s, nil
}

// VerifyToken checks an embedded token and returns the speaker it names.
// Errors: EAUTHREQUIRED, EAUTHINVALID, and with Users set EUNAVAILABLE.
func (e *Embedded) VerifyToken(ctx context.Context, token string) (*pentecost.User, error) {
	if token == "" {
		return nil, tokenRequired()
	} else if len(token) > maxTokenLength {
		return nil, invalid("token too long")
	}
	if len(e.Key) != ed25519.PrivateKeySize || e.Issuer == "" || e.Audience == "" {
		return nil, errors.New("auth: embedded issuer needs a key, an issuer and an audience")
	}
	if err := checkStrict(token); err != nil {
		return nil, invalid("embedded: %v", err)
	}
	pub := e.Key.Public()
	kid := e.KeyID()

	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{embeddedAlg}),
		jwt.WithIssuer(e.Issuer),
		jwt.WithAudience(e.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(e.Leeway),
		jwt.WithTimeFunc(e.Now),
	)
	var claims embeddedClaims
	_, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if got, _ := t.Header["kid"].(string); got != kid {
			return nil, errors.New("unknown key id")
		}
		return pub, nil
	})
	if err != nil {
		return nil, invalid("embedded: %v", err)
	}
	if claims.Subject == "" {
		return nil, invalid("embedded: no subject")
	}

	var role pentecost.Role
	if e.Users != nil {
		u, err := e.Users.FindUserByName(ctx, claims.Subject)
		if pentecost.ErrorCode(err) == pentecost.EUSERNOTFOUND {
			return nil, invalid("embedded: account no longer exists")
		} else if err != nil {
			return nil, err
		}
		// iat has whole seconds: a token from the very second of the change
		// survives it, anything older does not. An account removed and
		// added again has a new PasswordChangedAt, so this covers it too.
		if claims.IssuedAt == nil {
			return nil, invalid("embedded: no issue time")
		}
		if claims.IssuedAt.Time.Before(u.PasswordChangedAt.Truncate(time.Second)) {
			return nil, invalid("embedded: issued before the password was last set")
		}
		role = u.Role
	}

	name := claims.Name
	if name == "" {
		name = claims.Subject
	}
	return &pentecost.User{ID: claims.Subject, Name: name, Issuer: pentecost.EmbeddedIssuer, Role: role}, nil
}

var (
	_ pentecost.TokenVerifier = (*Embedded)(nil)
	_ pentecost.TokenIssuer   = (*Embedded)(nil)
)
