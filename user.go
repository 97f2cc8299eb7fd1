package pentecost

import (
	"context"
	"time"
)

// User is a speaker: someone who may create and run sessions. Listeners are
// anonymous and never have a User. An embedded account's Role says whether
// it may also manage accounts and every live session (the admin page).
type User struct {
	// ID is stable and unique across issuers: the account name for the
	// embedded issuer, "issuerName:sub" for an external OIDC issuer.
	ID string `json:"id"`
	// Name is what people see: the account name, or a name/email claim.
	Name string `json:"name"`
	// Issuer names who vouched for the user ("embedded" or a configured issuer).
	Issuer string `json:"issuer"`

	// Role is what the account may do. The embedded issuer reads it from the
	// store at every verification, so that a change counts at once; users of
	// external issuers have none and count as speakers.
	Role Role `json:"role,omitempty"`

	// PasswordHash is set only for embedded accounts and never leaves the server.
	PasswordHash string    `json:"-"`
	CreatedAt    time.Time `json:"-"`
	// PasswordChangedAt is when the account's password was last set (at
	// creation or by a change). Embedded tokens issued before it, to the
	// second, are refused, so a new password signs everyone else out.
	PasswordChangedAt time.Time `json:"-"`
}

// EmbeddedIssuer is the Issuer of accounts kept in Pentecost's own store.
const EmbeddedIssuer = "embedded"

// Role is what an embedded account may do.
type Role string

// Roles. A speaker runs its own sessions; an admin also manages accounts and
// may end anyone's session. The empty Role counts as RoleSpeaker.
const (
	RoleSpeaker Role = "speaker"
	RoleAdmin   Role = "admin"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool { return r == RoleSpeaker || r == RoleAdmin }

// IsAdmin reports whether u is an administrator.
func (u *User) IsAdmin() bool { return u != nil && u.Role == RoleAdmin }

// UserStore keeps embedded speaker accounts. It never lets the last admin
// go: removing or demoting it fails with ECONFLICT, atomically, so that two
// admins demoting each other at once leave one of them admin.
type UserStore interface {
	// CreateUser stores a new account, setting its CreatedAt and
	// PasswordChangedAt to now; an empty Role is stored as RoleSpeaker.
	// Errors: ECONFLICT if the name exists, EVALIDATIONFIELD, EUNAVAILABLE.
	CreateUser(ctx context.Context, u *User) error
	// FindUserByName returns one account. Errors: EUSERNOTFOUND, EUNAVAILABLE.
	FindUserByName(ctx context.Context, name string) (*User, error)
	// FindUsers returns all accounts by name.
	FindUsers(ctx context.Context) ([]*User, error)
	// UpdateUserPassword replaces an account's password hash and sets its
	// PasswordChangedAt to now. Errors: EUSERNOTFOUND, EUNAVAILABLE.
	UpdateUserPassword(ctx context.Context, name, passwordHash string) error
	// UpdateUserRole changes an account's role.
	// Errors: EUSERNOTFOUND, EVALIDATIONFIELD (not a role), ECONFLICT (it is
	// the last admin and role is not admin), EUNAVAILABLE.
	UpdateUserRole(ctx context.Context, name string, role Role) error
	// DeleteUser removes an account.
	// Errors: EUSERNOTFOUND, ECONFLICT (the last admin), EUNAVAILABLE.
	DeleteUser(ctx context.Context, name string) error
}

// TokenVerifier turns a bearer token into the speaker it names.
type TokenVerifier interface {
	// VerifyToken checks signature, algorithm, issuer, audience, token use
	// and validity period. Errors: EAUTHREQUIRED (empty token), EAUTHINVALID
	// (any other failure, with no detail), EAUTHUNAVAILABLE (the issuer's keys
	// cannot be fetched).
	VerifyToken(ctx context.Context, token string) (*User, error)
}

// TokenIssuer mints tokens for embedded accounts.
type TokenIssuer interface {
	// IssueToken returns a signed token for u valid for ttl.
	IssueToken(ctx context.Context, u *User, ttl time.Duration) (string, error)
}

type userContextKey struct{}

// NewContextWithUser returns a copy of ctx carrying the authenticated speaker.
func NewContextWithUser(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, userContextKey{}, u)
}

// UserFromContext returns the speaker in ctx, or nil for anonymous callers.
func UserFromContext(ctx context.Context) *User {
	u, _ := ctx.Value(userContextKey{}).(*User)
	return u
}

// UserIDFromContext returns the speaker's ID in ctx, or "".
func UserIDFromContext(ctx context.Context) string {
	if u := UserFromContext(ctx); u != nil {
		return u.ID
	}
	return ""
}

// PasswordAuthenticator checks an embedded account's name and password.
type PasswordAuthenticator interface {
	// Authenticate returns the account when the password matches.
	// Errors: EAUTHCREDENTIALS (unknown name or wrong password, alike), EUNAVAILABLE.
	Authenticate(ctx context.Context, name, password string) (*User, error)
}
