package http

import (
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pentecost/pentecost"
)

// codes maps every error code to its HTTP status. It is the one place that
// decides statuses; codes not listed get 500 (VALIDATION_* get 400).
var codes = map[string]int{
	pentecost.EINVALIDSESSIONID: http.StatusBadRequest,
	pentecost.EINVALIDLANGUAGE:  http.StatusBadRequest,
	pentecost.EUNSUPPORTEDLANG:  http.StatusBadRequest,
	pentecost.EVALIDATION:       http.StatusBadRequest,
	pentecost.EVALIDATIONBODY:   http.StatusBadRequest,
	pentecost.EVALIDATIONFIELD:  http.StatusBadRequest,

	pentecost.EAUTHREQUIRED:    http.StatusUnauthorized,
	pentecost.EAUTHINVALID:     http.StatusUnauthorized,
	pentecost.EAUTHCREDENTIALS: http.StatusUnauthorized,
	pentecost.EFORBIDDEN:       http.StatusForbidden,

	pentecost.ESESSIONNOTFOUND: http.StatusNotFound,
	pentecost.ENOTFOUND:        http.StatusNotFound,
	pentecost.EUSERNOTFOUND:    http.StatusNotFound,

	pentecost.EMETHODNOTALLOWED: http.StatusMethodNotAllowed,
	pentecost.ECONFLICT:         http.StatusConflict,
	pentecost.ESESSIONENDED:     http.StatusConflict,
	pentecost.EPAYLOADTOOLARGE:  http.StatusRequestEntityTooLarge,
	pentecost.ETIMEOUT:          http.StatusRequestTimeout,
	pentecost.ERATELIMIT:        http.StatusTooManyRequests,

	pentecost.EUNAVAILABLE:        http.StatusServiceUnavailable,
	pentecost.EAUTHUNAVAILABLE:    http.StatusServiceUnavailable,
	pentecost.ESESSIONFULL:        http.StatusServiceUnavailable,
	pentecost.ESESSIONIDEXHAUSTED: http.StatusServiceUnavailable,

	pentecost.EINTERNAL: http.StatusInternalServerError,
}

// StatusCode returns the HTTP status for an error code: the table above,
// 400 for any other VALIDATION_* code and 500 for anything unknown.
func StatusCode(code string) int {
	if s, ok := codes[code]; ok {
		return s
	}
	if strings.HasPrefix(code, "VALIDATION_") {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// ErrorResponse is the JSON body of every error, in the original system's shape.
type ErrorResponse struct {
	Type          string `json:"type"` // always "error"
	Code          string `json:"code"`
	Message       string `json:"message"`
	Details       any    `json:"details,omitempty"`
	CorrelationID string `json:"correlationId"`
	Timestamp     int64  `json:"timestamp"` // Unix milliseconds
	// RetryAfter is set with 429: whole seconds until a retry can succeed.
	RetryAfter int `json:"retryAfter,omitempty"`
}

// statusClientClosed is written when the client went away before its
// answer was ready (nginx's 499): nobody reads it, but the access log and
// metrics tell it apart from the server's own failures.
const statusClientClosed = 499

// Error writes err to w as JSON with the status its code maps to. Internal
// errors are logged with the correlation ID and answered with "Internal
// error." so that nothing internal reaches the client. A 429 carries a
// Retry-After header and field; a 401 carries WWW-Authenticate.
//
// When the request's context has ended, the client went away and err is
// most likely its consequence: it is logged at debug level only, is not
// counted as an error, and the response is a bare status that nobody is
// waiting for. REQUEST_TIMEOUT is the exception: a client that stopped
// sending in time (which also ends the context) is still there to read a
// 408, and the connection is closed after it.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	info := infoFrom(r)
	code, message := pentecost.ErrorCode(err), pentecost.ErrorMessage(err)
	if r.Context().Err() != nil && code != pentecost.ETIMEOUT {
		clientGone(w, r, info, err)
		return
	}
	status := StatusCode(code)

	now := time.Now
	var logger *slog.Logger
	if info != nil {
		info.code = code
		if info.srv != nil {
			now = info.srv.Now
			logger = info.srv.Logger
			info.srv.metrics.errors.WithLabelValues(code).Inc()
		}
	}

	if logger != nil {
		switch {
		case code == pentecost.EINTERNAL:
			logger.LogAttrs(r.Context(), slog.LevelError, "internal error",
				slog.String(logKeyCorrelationID, info.correlationID),
				slog.String(logKeyRoute, info.route),
				slog.String(logKeyError, err.Error()))
		case status >= 500:
			logger.LogAttrs(r.Context(), slog.LevelWarn, "service unavailable",
				slog.String(logKeyCorrelationID, info.correlationID),
				slog.String(logKeyCode, code),
				slog.String(logKeyError, err.Error()))
		}
	}

	resp := ErrorResponse{
		Type:      "error",
		Code:      code,
		Message:   message,
		Details:   pentecost.ErrorDetails(err),
		Timestamp: now().UnixMilli(),
	}
	if info != nil {
		resp.CorrelationID = info.correlationID
	}

	switch status {
	case http.StatusRequestTimeout:
		// What is left of the body must not be read as the next request.
		w.Header().Set("Connection", "close")
	case http.StatusTooManyRequests:
		resp.RetryAfter = retrySeconds(pentecost.ErrorRetryAfter(err))
		w.Header().Set("Retry-After", strconv.Itoa(resp.RetryAfter))
	case http.StatusUnauthorized:
		if code == pentecost.EAUTHINVALID {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pentecost", error="invalid_token"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pentecost"`)
		}
	}
	writeJSON(w, status, resp)
}

// clientGone ends a request whose client is no longer there.
func clientGone(w http.ResponseWriter, r *http.Request, info *requestInfo, err error) {
	if info != nil && info.srv != nil {
		info.srv.Logger.LogAttrs(r.Context(), slog.LevelDebug, "client went away",
			slog.String(logKeyCorrelationID, info.correlationID),
			slog.String(logKeyRoute, info.route),
			slog.String(logKeyError, err.Error()))
	}
	w.WriteHeader(statusClientClosed)
}

// retrySeconds rounds a delay up to whole seconds, at least one.
func retrySeconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		return 1
	}
	return s
}

// writeJSON writes v as the JSON response body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// The status is sent; a failed write means the client went away.
	_ = json.NewEncoder(w).Encode(v)
}
