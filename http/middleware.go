package http

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/pentecost/pentecost"
)

// Log keys used by this package.
const (
	logKeyMethod        = "method"
	logKeyRoute         = "route"
	logKeyStatus        = "status"
	logKeyDuration      = "duration_ms"
	logKeyCorrelationID = "correlation_id"
	logKeySessionID     = "session_id"
	logKeyClientIP      = "client_net"
	logKeyCode          = "code"
	logKeyError         = "error"
	logKeyPanic         = "panic"
	logKeyStack         = "stack"
)

// CorrelationHeader carries the correlation ID of a request and its response.
const CorrelationHeader = "X-Correlation-ID"

// correlationPattern is what we accept from a client as a correlation ID, so
// that nothing odd reaches our logs.
var correlationPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// unmatchedRoute labels requests no route matched, keeping metric label
// values few whatever paths clients try.
const unmatchedRoute = "unmatched"

// requestInfo is what the layers of one request tell each other. The outer
// middleware puts it in the context; the route and Error fill it in.
type requestInfo struct {
	srv           *Server
	correlationID string
	route         string // pattern without method, or unmatchedRoute
	sessionID     string
	code          string // error code written, if any
	debug         bool   // log the request at debug level (LogAtDebug)
}

type infoContextKey struct{}

func infoFrom(r *http.Request) *requestInfo {
	info, _ := r.Context().Value(infoContextKey{}).(*requestInfo)
	return info
}

// CorrelationID returns the correlation ID of a request served by Server,
// or "" outside it. Other layers (e.g. WebSocket) put it in their messages.
// It is pentecost.CorrelationIDFromContext, which packages that must not
// import this one use.
func CorrelationID(ctx context.Context) string {
	return pentecost.CorrelationIDFromContext(ctx)
}

// handler returns the whole middleware chain around the mux, outermost
// first: correlation ID, access log and metrics, panic recovery, routing.
func (s *Server) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()

		info := &requestInfo{srv: s, route: unmatchedRoute, correlationID: r.Header.Get(CorrelationHeader)}
		if !correlationPattern.MatchString(info.correlationID) {
			info.correlationID = rand.Text()
		}
		w.Header().Set(CorrelationHeader, info.correlationID)
		ctx := context.WithValue(r.Context(), infoContextKey{}, info)
		r = r.WithContext(pentecost.NewContextWithCorrelationID(ctx, info.correlationID))

		sw := &statusWriter{ResponseWriter: w}
		abort := s.recoverPanic(sw, r, func() { s.dispatch(sw, r) })

		status := sw.status
		if status == 0 {
			status = http.StatusOK // the handler wrote nothing at all
		}
		elapsed := time.Since(start)
		s.metrics.requests.WithLabelValues(info.route, methodLabel(r.Method), statusClass(status)).Observe(elapsed.Seconds())

		attrs := []slog.Attr{
			slog.String(logKeyMethod, truncate(r.Method, 16)),
			slog.String(logKeyRoute, info.route),
			slog.Int(logKeyStatus, status),
			slog.Float64(logKeyDuration, float64(elapsed.Microseconds())/1000),
			slog.String(logKeyCorrelationID, info.correlationID),
			slog.String(logKeyClientIP, truncatedIP(ClientIP(r, s.TrustedProxies))),
		}
		if info.sessionID != "" {
			attrs = append(attrs, slog.String(logKeySessionID, info.sessionID))
		}
		if info.code != "" {
			attrs = append(attrs, slog.String(logKeyCode, info.code))
		}
		level := slog.LevelInfo
		if info.debug {
			level = slog.LevelDebug
		}
		s.Logger.LogAttrs(r.Context(), level, "http request", attrs...)
		if abort {
			panic(http.ErrAbortHandler) // net/http then drops the connection
		}
	})
}

// recoverPanic runs fn and turns a panic into a logged 500. It reports abort
// when the response was already under way and must be cut instead.
func (s *Server) recoverPanic(w *statusWriter, r *http.Request, fn func()) (abort bool) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler {
			abort = true // net/http's way of cutting a response quietly
			return
		}
		s.Logger.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
			slog.String(logKeyCorrelationID, CorrelationID(r.Context())),
			slog.String(logKeyPanic, fmt.Sprint(v)),
			slog.String(logKeyStack, string(debug.Stack())))
		if w.status == 0 && !w.hijacked {
			Error(w, r, fmt.Errorf("panic: %v", v))
		} else {
			abort = true // too late for a clean error
		}
	}()
	fn()
	return false
}

// dispatch routes r through the mux, answering requests no route matches
// with NOT_FOUND or METHOD_NOT_ALLOWED in our error shape rather than the
// mux's plain text.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	// Let the mux's own handler decide between 404 and 405 (and the Allow
	// header), but throw away its plain-text body.
	cw := &captureWriter{header: make(http.Header)}
	h.ServeHTTP(cw, r)
	if cw.status == http.StatusMethodNotAllowed {
		if allow := cw.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		Error(w, r, pentecost.Errorf(pentecost.EMETHODNOTALLOWED, "Method %s is not allowed here.", r.Method))
		return
	}
	Error(w, r, pentecost.Errorf(pentecost.ENOTFOUND, "Not found."))
}

// authenticate verifies the bearer token and returns r with the speaker in
// its context. On failure it writes the error and returns false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	u, err := s.verifyBearer(r)
	if err != nil {
		Error(w, r, err)
		return r, false
	}
	return r.WithContext(pentecost.NewContextWithUser(r.Context(), u)), true
}

// optionalUserID returns the ID of the speaker whose bearer token r
// carries, or "" when it carries none or one that does not verify: on a
// public route a bad token makes the caller anonymous, not refused.
func (s *Server) optionalUserID(r *http.Request) string {
	if r.Header.Get("Authorization") == "" {
		return ""
	}
	u, err := s.verifyBearer(r)
	if err != nil {
		return ""
	}
	return u.ID
}

// verifyBearer checks the Authorization header and its bearer token.
// Errors: EAUTHREQUIRED, EAUTHINVALID, and whatever the Verifier returns.
func (s *Server) verifyBearer(r *http.Request) (*pentecost.User, error) {
	header := r.Header.Get("Authorization")
	if header == "" {
		return nil, pentecost.Errorf(pentecost.EAUTHREQUIRED, "A bearer token is required.")
	}
	scheme, token, _ := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, pentecost.Errorf(pentecost.EAUTHINVALID, "The Authorization header must be \"Bearer <token>\".")
	}
	return s.Verifier.VerifyToken(r.Context(), token)
}

// methodLabel keeps made-up methods from adding metric label values.
func methodLabel(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return m
	}
	return "other"
}

// statusClass turns 404 into "4xx", keeping metric label values few.
func statusClass(status int) string {
	return fmt.Sprintf("%dxx", status/100)
}

// statusWriter remembers the status written through it. It passes on
// flushing and hijacking so that streams and WebSockets work behind it.
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends buffered data to the client.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over, as for a WebSocket upgrade.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
		if w.status == 0 {
			w.status = http.StatusSwitchingProtocols
		}
	}
	return conn, rw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// captureWriter records a response instead of sending it.
type captureWriter struct {
	header http.Header
	status int
}

func (w *captureWriter) Header() http.Header { return w.header }
func (w *captureWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *captureWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(b), nil
}
