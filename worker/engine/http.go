package engine

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Helpers every engine that talks to a service over HTTP shares, so that
// a 429 or a Retry-After means the same in all of them.

// StatusCode maps an HTTP status of a failed call to an error code.
func StatusCode(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return ErrThrottled
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return ErrTimeout
	case status >= 500:
		return ErrUnavailable
	case status == http.StatusNotFound:
		return ErrUnsupported // a model, voice or path the server does not have
	default:
		return ErrRefused
	}
}

// RetryAfter reads a Retry-After header in either of its forms, seconds or
// an HTTP date (RFC 9110 §10.2.3); 0 when absent, unreadable or past.
func RetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil {
		if s > math.MaxInt64/int(time.Second) {
			return math.MaxInt64 // more seconds than a Duration holds
		}
		return time.Duration(max(s, 0)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// Retryable reports whether a call that failed with code may succeed if
// tried again: throttled, unavailable or timed out.
func Retryable(code string) bool {
	return code == ErrThrottled || code == ErrUnavailable || code == ErrTimeout
}

// ContextCode is the code of a call cut off by its context: a deadline is
// a timeout; a cancellation (the language or session stopped) is not the
// engine's failure.
func ContextCode(ctx context.Context) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	return ErrInternal
}

// Backoff is the wait before retry i (from 0): minB doubling up to maxB,
// with "equal jitter" (half fixed, half random) so that workers that failed
// together do not retry together.
func Backoff(minB, maxB time.Duration, i int) time.Duration {
	d := minB << min(i, 16)
	if maxB > 0 && d > maxB {
		d = maxB
	}
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}
