// Package auth proves who a speaker is. It holds the embedded issuer (accounts
// kept in Pentecost's own store, with argon2id password hashes and Ed25519
// signed tokens), verifiers for external OpenID Connect issuers such as Amazon
// Cognito (keys fetched from a JWKS endpoint), and a Verifier that routes a
// bearer token to the issuer that signed it.
//
// Every rejected token yields the same error code and message, so that a
// caller learns nothing that helps forge the next one; the real reason travels
// inside the error for logs only (see Reason).
package auth

import (
	"errors"
	"fmt"

	"github.com/pentecost/pentecost"
)

// Messages shown to clients. They are deliberately the same for every reason.
const (
	msgInvalidToken = "Invalid or expired token."
	msgUnavailable  = "Sign-in is temporarily unavailable."
	msgTokenMissing = "A bearer token is required."
	msgCredentials  = "Invalid name or password."
)

// Log keys used by this package.
const (
	logKeyReason = "reason"
	logKeyIssuer = "issuer"
	logKeyCode   = "code"
	logKeyError  = "error"
	// logKeyCorrelationID matches the http package's key, so that one
	// search finds a request's access log and its token refusal.
	logKeyCorrelationID = "correlation_id"
)

// maxTokenLength bounds the tokens we agree to parse; real ID and access
// tokens are a few kilobytes at most.
const maxTokenLength = 16 << 10

// reasonError is a client-safe *pentecost.Error that also carries the real
// reason for a rejection, for logs only.
type reasonError struct {
	err    *pentecost.Error
	reason string
}

func (e *reasonError) Error() string { return e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

// invalid returns EAUTHINVALID with the generic message and the given reason.
func invalid(format string, args ...any) error {
	return &reasonError{
		err:    pentecost.Errorf(pentecost.EAUTHINVALID, msgInvalidToken),
		reason: fmt.Sprintf(format, args...),
	}
}

// unavailable returns EAUTHUNAVAILABLE with the generic message and a reason.
func unavailable(format string, args ...any) error {
	return &reasonError{
		err:    pentecost.Errorf(pentecost.EAUTHUNAVAILABLE, msgUnavailable),
		reason: fmt.Sprintf(format, args...),
	}
}

// tokenRequired is returned for an empty bearer token.
func tokenRequired() error {
	return &reasonError{
		err:    pentecost.Errorf(pentecost.EAUTHREQUIRED, msgTokenMissing),
		reason: "no token",
	}
}

// Reason returns the internal reason a token or credential was refused, for
// logging. It never contains the token itself. It returns "" for errors that
// do not come from this package's checks.
func Reason(err error) string {
	var e *reasonError
	if errors.As(err, &e) {
		return e.reason
	}
	return ""
}
