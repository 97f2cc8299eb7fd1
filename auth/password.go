package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pentecost/pentecost"
	"golang.org/x/crypto/argon2"
)

// Password policy limits, in characters.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 1024
)

// Params are the argon2id cost parameters used to hash new passwords.
// Existing hashes carry their own parameters, so changing Params never
// locks anyone out.
type Params struct {
	// Memory is in KiB.
	Memory uint32
	// Time is the number of passes over the memory.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLength and KeyLength are in bytes.
	SaltLength uint32
	KeyLength  uint32
}

// DefaultParams are moderate argon2id parameters: 64 MiB, one pass, two
// lanes. A hash takes tens of milliseconds on a small server.
var DefaultParams = Params{
	Memory:     64 * 1024,
	Time:       1,
	Threads:    2,
	SaltLength: 16,
	KeyLength:  32,
}

// Bounds on the parameters we accept when reading a stored hash, so that a
// damaged or hostile row cannot make a login allocate gigabytes.
const (
	maxMemory  = 1 << 20 // 1 GiB in KiB
	maxTime    = 100
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 128
)

// b64 is the PHC string format's base64: standard alphabet, no padding.
var b64 = base64.RawStdEncoding

// ValidatePassword checks the password policy.
// Errors: EVALIDATIONFIELD.
func ValidatePassword(pw string) error {
	if !utf8.ValidString(pw) {
		return fieldError("password", "Password must be valid UTF-8 text.")
	}
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPasswordLength:
		return fieldError("password", fmt.Sprintf("Password must be at least %d characters.", MinPasswordLength))
	case n > MaxPasswordLength:
		return fieldError("password", fmt.Sprintf("Password must be at most %d characters.", MaxPasswordLength))
	}
	return nil
}

// fieldError is EVALIDATIONFIELD naming the field, so that a form can
// point at it.
func fieldError(field, message string) error {
	return &pentecost.Error{Code: pentecost.EVALIDATIONFIELD, Message: message, Details: map[string]string{"field": field}}
}

// HashPassword checks the password policy and hashes pw with DefaultParams.
// Errors: EVALIDATIONFIELD.
func HashPassword(pw string) (string, error) {
	return DefaultParams.Hash(pw)
}

// Hash checks the password policy and returns pw hashed with argon2id as a
// PHC string: $argon2id$v=19$m=65536,t=1,p=2$salt$hash.
// Errors: EVALIDATIONFIELD.
func (p Params) Hash(pw string) (string, error) {
	if err := ValidatePassword(pw); err != nil {
		return "", err
	}
	return p.hash(pw)
}

// hash hashes without the policy check (used for the dummy hash too).
func (p Params) hash(pw string) (string, error) {
	if err := p.validate(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: read salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLength)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

func (p Params) validate() error {
	switch {
	case p.Threads == 0:
		return errors.New("auth: argon2 threads must be at least 1")
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("auth: argon2 memory must be between %d and %d KiB", 8*uint32(p.Threads), maxMemory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("auth: argon2 time must be between 1 and %d", maxTime)
	case p.SaltLength < minSaltLen || p.SaltLength > maxSaltLen:
		return fmt.Errorf("auth: argon2 salt length must be between %d and %d bytes", minSaltLen, maxSaltLen)
	case p.KeyLength < minKeyLen || p.KeyLength > maxKeyLen:
		return fmt.Errorf("auth: argon2 key length must be between %d and %d bytes", minKeyLen, maxKeyLen)
	}
	return nil
}

// CheckPassword reports whether pw matches the encoded argon2id hash. The
// comparison takes the same time wherever the first difference lies. A
// malformed hash is an internal error: stored hashes are ours.
func CheckPassword(encoded, pw string) (bool, error) {
	p, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLength)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// decodeHash parses a PHC argon2id string and checks its parameters.
func decodeHash(encoded string) (p Params, salt, key []byte, err error) {
	fail := func(what string) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("auth: malformed password hash: %s", what)
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return fail("wrong number of fields")
	}
	if parts[1] != "argon2id" {
		return fail("not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return fail("unsupported version")
	}

	var m, t, par uint64
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return fail("wrong parameter list")
	}
	for i, dst := range []*uint64{&m, &t, &par} {
		name, value, ok := strings.Cut(fields[i], "=")
		if !ok || name != "mtp"[i:i+1] {
			return fail("wrong parameter list")
		}
		if *dst, err = strconv.ParseUint(value, 10, 32); err != nil {
			return fail("bad parameter " + name)
		}
	}
	if par > 255 {
		return fail("bad parameter p")
	}
	if salt, err = b64.Strict().DecodeString(parts[4]); err != nil {
		return fail("bad salt encoding")
	}
	if key, err = b64.Strict().DecodeString(parts[5]); err != nil {
		return fail("bad hash encoding")
	}
	p = Params{
		Memory: uint32(m), Time: uint32(t), Threads: uint8(par),
		SaltLength: uint32(len(salt)), KeyLength: uint32(len(key)),
	}
	if err := p.validate(); err != nil {
		return fail(strings.TrimPrefix(err.Error(), "auth: "))
	}
	return p, salt, key, nil
}
