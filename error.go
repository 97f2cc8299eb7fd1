package pentecost

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. They are the original system's codes, so that its clients can
// keep switching on them; transports map each to a status in one table.
const (
	// Input that cannot be used.
	EINVALIDSESSIONID = "INVALID_SESSION_ID"
	EINVALIDLANGUAGE  = "INVALID_LANGUAGE"
	EUNSUPPORTEDLANG  = "UNSUPPORTED_LANGUAGE"
	EVALIDATION       = "VALIDATION_ERROR"
	EVALIDATIONBODY   = "VALIDATION_INVALID_BODY"
	EVALIDATIONFIELD  = "VALIDATION_INVALID_FIELD"
	EPAYLOADTOOLARGE  = "PAYLOAD_TOO_LARGE"
	// ETIMEOUT: the request (its body, say) did not arrive in time.
	ETIMEOUT = "REQUEST_TIMEOUT"

	// Identity and permission.
	EAUTHREQUIRED    = "AUTH_REQUIRED"
	EAUTHINVALID     = "AUTH_INVALID_TOKEN"
	EAUTHCREDENTIALS = "AUTH_INVALID_CREDENTIALS"
	EAUTHUNAVAILABLE = "AUTH_PROVIDER_UNAVAILABLE"
	EFORBIDDEN       = "FORBIDDEN"

	// Sessions and capacity.
	ESESSIONNOTFOUND    = "SESSION_NOT_FOUND"
	ESESSIONFULL        = "SESSION_FULL"
	ESESSIONENDED       = "SESSION_ENDED"
	EUSERNOTFOUND       = "USER_NOT_FOUND"
	ESESSIONIDEXHAUSTED = "SESSION_ID_UNAVAILABLE"
	ERATELIMIT          = "RATE_LIMIT_EXCEEDED"
	ENOTFOUND           = "NOT_FOUND"
	EMETHODNOTALLOWED   = "METHOD_NOT_ALLOWED"
	ECONFLICT           = "CONFLICT"

	// The server's own trouble.
	EUNAVAILABLE = "SERVICE_UNAVAILABLE"
	EINTERNAL    = "INTERNAL_ERROR"
)

// Error is an error a user may see: a code from the list above and a message
// written for people. Anything that is not an *Error is internal and its text
// never reaches a client.
type Error struct {
	Code    string
	Message string

	// Details is optional structured context safe to show (e.g. which field).
	Details any

	// RetryAfter is set with ERATELIMIT: how long until a retry can succeed.
	RetryAfter time.Duration
}

// Error implements the error interface. Not used by the application otherwise.
func (e *Error) Error() string {
	return fmt.Sprintf("pentecost error: code=%s message=%s", e.Code, e.Message)
}

// Errorf is a helper function to return an Error with a given code and
// formatted message.
func Errorf(code string, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode unwraps an application error and returns its code. Non-application
// errors always return EINTERNAL; nil returns "".
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage unwraps an application error and returns its message.
// Non-application errors always return "Internal error." so that nothing
// internal leaks to a client.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// ErrorRetryAfter returns the retry delay carried by a rate-limit error, or 0.
func ErrorRetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ErrorDetails returns the details carried by an application error, or nil.
func ErrorDetails(err error) any {
	var e *Error
	if errors.As(err, &e) {
		return e.Details
	}
	return nil
}
