package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/pentecost/pentecost"
)

// MaxNameLength is the longest account name, in characters.
const MaxNameLength = 64

// Accounts manages embedded speaker accounts: names and argon2id password
// hashes kept in a UserStore.
type Accounts struct {
	// Users stores the accounts.
	Users pentecost.UserStore
	// Params are used to hash new passwords.
	Params Params
	// Now stamps new accounts.
	Now func() time.Time
	// MaxConcurrent bounds the password checks Authenticate runs at once
	// (runtime.GOMAXPROCS(0) by NewAccounts); more wait their turn for as
	// long as their context lasts. Each check takes Params.Memory (64 MiB by
	// default), so this bounds the memory a flood of sign-ins can take.
	// Read once, at the first Authenticate; less than 1 means 1.
	MaxConcurrent int

	semOnce sync.Once
	sem     chan struct{}

	dummyOnce sync.Once
	dummy     string
	dummyErr  error

	// onCheck, if set, runs just before each password check, while its
	// slot is held (tests).
	onCheck func()
}

// NewAccounts returns Accounts over users with DefaultParams.
func NewAccounts(users pentecost.UserStore) *Accounts {
	return &Accounts{Users: users, Params: DefaultParams, Now: time.Now, MaxConcurrent: runtime.GOMAXPROCS(0)}
}

// ValidateName checks an account name: 1 to 64 ASCII letters, digits, '.',
// '_' or '-' (the store's own rule). A ':' in particular is refused, so that
// no account can take the ID of an external speaker ("issuer:sub").
// Errors: EVALIDATIONFIELD.
func ValidateName(name string) error {
	if name == "" {
		return fieldError("name", "Name is required.")
	}
	if len(name) > MaxNameLength {
		return fieldError("name", fmt.Sprintf("Name must be at most %d characters.", MaxNameLength))
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fieldError("name", "Name may only use letters, digits, '.', '_' and '-'.")
		}
	}
	return nil
}

// Add creates a speaker account.
// Errors: EVALIDATIONFIELD, ECONFLICT (name taken), EUNAVAILABLE.
func (a *Accounts) Add(ctx context.Context, name, password string) (*pentecost.User, error) {
	return a.AddWithRole(ctx, name, password, pentecost.RoleSpeaker)
}

// AddWithRole creates an account with the given role.
// Errors: EVALIDATIONFIELD, ECONFLICT (name taken), EUNAVAILABLE.
func (a *Accounts) AddWithRole(ctx context.Context, name, password string, role pentecost.Role) (*pentecost.User, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if !role.Valid() {
		return nil, fieldError("role", `Role must be "admin" or "speaker".`)
	}
	hash, err := a.Params.Hash(password)
	if err != nil {
		return nil, err
	}
	u := &pentecost.User{
		ID:           name,
		Name:         name,
		Issuer:       pentecost.EmbeddedIssuer,
		Role:         role,
		PasswordHash: hash,
		CreatedAt:    a.Now().UTC(),
	}
	if err := a.Users.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	return withoutHash(u), nil
}

// List returns all accounts by name, without their password hashes.
func (a *Accounts) List(ctx context.Context) ([]*pentecost.User, error) {
	users, err := a.Users.FindUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*pentecost.User, len(users))
	for i, u := range users {
		out[i] = withoutHash(u)
	}
	return out, nil
}

// SetPassword replaces an account's password.
// Errors: EVALIDATIONFIELD, EUSERNOTFOUND, EUNAVAILABLE.
func (a *Accounts) SetPassword(ctx context.Context, name, password string) error {
	hash, err := a.Params.Hash(password)
	if err != nil {
		return err
	}
	return a.Users.UpdateUserPassword(ctx, name, hash)
}

// Find returns an account without its password hash, for what sign-in
// decides before the password is checked: which backoff counts an attempt,
// and whether a device cookie predates the password.
// Errors: EUSERNOTFOUND, EUNAVAILABLE.
func (a *Accounts) Find(ctx context.Context, name string) (*pentecost.User, error) {
	if ValidateName(name) != nil {
		return nil, pentecost.Errorf(pentecost.EUSERNOTFOUND, "Account not found.")
	}
	u, err := a.Users.FindUserByName(ctx, name)
	if err != nil {
		return nil, err
	}
	return withoutHash(u), nil
}

// Remove deletes an account.
// Errors: EUSERNOTFOUND, ECONFLICT (the last admin), EUNAVAILABLE.
func (a *Accounts) Remove(ctx context.Context, name string) error {
	return a.Users.DeleteUser(ctx, name)
}

// SetRole changes an account's role. It takes effect at the account's next
// request: the embedded issuer reads the role at every verification.
// Errors: EVALIDATIONFIELD, EUSERNOTFOUND, ECONFLICT (the last admin), EUNAVAILABLE.
func (a *Accounts) SetRole(ctx context.Context, name string, role pentecost.Role) error {
	return a.Users.UpdateUserRole(ctx, name, role)
}

// Authenticate returns the account when password matches. An unknown name
// costs the same hashing work as a wrong password, so timing does not tell
// which names exist. At most MaxConcurrent checks run at once; when ctx
// ends while waiting for a turn, its error is returned as it is.
// Errors: EAUTHCREDENTIALS (unknown name or wrong password, alike), EUNAVAILABLE.
func (a *Accounts) Authenticate(ctx context.Context, name, password string) (*pentecost.User, error) {
	if len(password) > 4*MaxPasswordLength {
		// Longer than any valid password could be; says nothing about name.
		return nil, credentials("password too long")
	}
	var u *pentecost.User
	if ValidateName(name) == nil {
		var err error
		u, err = a.Users.FindUserByName(ctx, name)
		if err != nil && pentecost.ErrorCode(err) != pentecost.EUSERNOTFOUND {
			return nil, err
		}
	}

	release, err := a.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if a.onCheck != nil {
		a.onCheck()
	}

	if u == nil || u.PasswordHash == "" {
		dummy, err := a.dummyHash()
		if err != nil {
			return nil, err
		}
		_, _ = CheckPassword(dummy, password)
		return nil, credentials("unknown account")
	}
	ok, err := CheckPassword(u.PasswordHash, password)
	if err != nil {
		return nil, fmt.Errorf("auth: account %q: %w", name, err)
	}
	if !ok {
		return nil, credentials("wrong password")
	}
	return withoutHash(u), nil
}

// acquire waits for one of the MaxConcurrent password-check slots, or for
// ctx to end. The caller must call release once its check is done.
func (a *Accounts) acquire(ctx context.Context) (release func(), err error) {
	a.semOnce.Do(func() { a.sem = make(chan struct{}, max(a.MaxConcurrent, 1)) })
	select {
	case a.sem <- struct{}{}:
		return func() { <-a.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dummyHash is a hash of a random password with the current Params,
// computed once, to spend equal work on unknown names.
func (a *Accounts) dummyHash() (string, error) {
	a.dummyOnce.Do(func() {
		a.dummy, a.dummyErr = a.Params.hash(GeneratePassword())
	})
	return a.dummy, a.dummyErr
}

func credentials(reason string) error {
	return &reasonError{
		err:    pentecost.Errorf(pentecost.EAUTHCREDENTIALS, msgCredentials),
		reason: reason,
	}
}

func withoutHash(u *pentecost.User) *pentecost.User {
	c := *u
	c.PasswordHash = ""
	return &c
}

// GeneratePassword returns a random, URL-safe 20-character password (120
// bits), e.g. for the first administrator account.
func GeneratePassword() string {
	b := make([]byte, 15)
	_, _ = rand.Read(b) // crypto/rand never fails; it aborts the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

var _ pentecost.PasswordAuthenticator = (*Accounts)(nil)
