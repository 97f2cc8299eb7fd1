package realtime

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/pentecost/pentecost"
	pthttp "github.com/pentecost/pentecost/http"
)

// subprotocol is what browsers offer, with "bearer.<token>", to pass a token.
const subprotocol = "pentecost"

// query is a parsed handshake query string.
type query struct {
	action, role      string
	sessionID         string
	targetLanguage    string
	sourceLanguage    string
	qualityTier       string
	binary            bool
	codec             string // pentecost.CodecPCM or CodecOpus
	hasSince          bool
	since             uint64
	epoch             string
	token             string
	refresh           bool
	ticket            string // refreshTicket: the connection a refresh replaces (ticket.go)
	legacyCreate      bool
	client            string // ClientKey: what per-client limits count
	invalidSince      bool
	invalidFormat     bool
	invalidCodec      bool
	invalidRefreshFor bool
}

func (s *Server) parseQuery(r *http.Request) query {
	v := r.URL.Query()
	q := query{
		action:         v.Get("action"),
		role:           v.Get("role"),
		sessionID:      v.Get("sessionId"),
		targetLanguage: v.Get("targetLanguage"),
		sourceLanguage: v.Get("sourceLanguage"),
		qualityTier:    v.Get("qualityTier"),
		epoch:          v.Get("epoch"),
		ticket:         v.Get("refreshTicket"),
		client:         s.ClientKey(r),
	}
	switch f := v.Get("audioFormat"); f {
	case "", "json":
	case "binary":
		q.binary = true
	default:
		q.invalidFormat = true
	}
	switch v.Get("codec") {
	case "", "pcm":
	case "opus":
		q.codec = pentecost.CodecOpus
	default:
		q.invalidCodec = true
	}
	if n := v.Get("lastSequenceNumber"); n != "" {
		since, err := strconv.ParseUint(n, 10, 64)
		q.since, q.hasSince, q.invalidSince = since, err == nil, err != nil
	}
	q.refresh = q.action == "refreshConnection"
	q.legacyCreate = q.action == "createSession"
	q.token = bearerToken(r, v)
	return q
}

// bearerToken takes a token from the query, the Authorization header or
// the Sec-WebSocket-Protocol offer, in that order.
func bearerToken(r *http.Request, v url.Values) string {
	if t := v.Get("token"); t != "" {
		return t
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); strings.HasPrefix(p, "bearer.") {
				return p[len("bearer."):]
			}
		}
	}
	return ""
}

// originAllowed implements the Origin check: no Origin, the server's own
// host, or an allowlisted origin.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, a := range s.AllowedOrigins {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), origin) {
			return true
		}
	}
	return false
}

// ServeHTTP upgrades GET /ws and runs the connection until it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		s.metrics.joins(roleUnknown, pentecost.EFORBIDDEN)
		pthttp.Error(w, r, pentecost.Errorf(pentecost.EFORBIDDEN, "Origin not allowed."))
		return
	}
	// Checked here, not left to the upgrader, so that a request that is no
	// WebSocket handshake gets the API's JSON error rather than a library's
	// plain-text wording.
	if err := checkHandshake(r); err != nil {
		if r.Header.Get("Sec-WebSocket-Version") != "" {
			w.Header().Set("Sec-WebSocket-Version", "13") // RFC 6455 4.4: the version we speak
		}
		pthttp.Error(w, r, err)
		return
	}
	start := time.Now()
	q := s.parseQuery(r)
	// Before the upgrade, so that a client over the cap costs no
	// connection state; one that holds the cap has its connections.
	if !s.clients.admit(q.client, s.connCap(q.refresh)) {
		s.metrics.joins(roleOf(q), pentecost.ERATELIMIT)
		pthttp.LogAtDebug(r)
		pthttp.Error(w, r, errTooManyConns())
		return
	}

	up := ws.HTTPUpgrader{Timeout: 5 * time.Second}
	if r.Header.Get("Sec-WebSocket-Protocol") != "" {
		up.Protocol = func(p string) bool { return p == subprotocol }
	}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			_ = nc.Close()
		}
		s.clients.release(q.client, nil)
		return
	}
	// Keep a small read buffer: listeners send little, and per-connection
	// memory decides how many idle listeners a node holds.
	br := rw.Reader
	if br.Buffered() == 0 {
		br = bufio.NewReaderSize(nc, 512)
	}

	r0 := roleOf(q)
	c := s.newConn(nc, br, r0, q.binary)
	s.clients.add(q.client, c)
	if !s.hub.addConn(c) {
		c.reject(pentecost.Errorf(pentecost.EUNAVAILABLE, "Server is shutting down; try again."), q.sessionID)
		c.shutdown()
		s.clients.release(q.client, c)
		return
	}

	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	err = s.join(ctx, c, q)
	cancel()
	s.metrics.joinLatency.Observe(time.Since(start).Seconds())
	s.metrics.joins(r0, pentecost.ErrorCode(err))
	if err != nil {
		switch pentecost.ErrorCode(err) {
		case pentecost.ESESSIONNOTFOUND, pentecost.ERATELIMIT:
			pthttp.LogAtDebug(r) // a guesser or a flood must not fill the log
		}
		c.reject(err, q.sessionID)
		c.shutdown()
		s.hub.removeConn(c)
		s.clients.release(q.client, c)
		return
	}
	c.joined.Store(true)
	if c.refreshSent.Load() { // a drain began while this join was running
		s.sendRefreshRequired(c)
	}
	c.log.Debug("connected", logSession, c.sessionID())
	s.metrics.conns.WithLabelValues(r0.String()).Inc()
	// The connection lives on a fresh goroutine and this handler returns:
	// net/http's goroutine keeps its 4 KB read and write buffers, the
	// request and a stack grown to 16 KB by the join for as long as it
	// runs. With 10,000 idle listeners that was 34 KB of server memory per
	// listener (heap profile: bufio 4.7 KB, stacks 16.7 KB); a read loop
	// alone fits the initial 8 KB stack.
	go func() {
		defer s.clients.release(q.client, c)
		defer s.hub.removeConn(c)
		defer s.metrics.conns.WithLabelValues(r0.String()).Dec()
		c.serve(s.ctx, func(op ws.OpCode, p []byte) { s.handle(c, op, p) })
		s.leave(c)
		c.log.Debug("disconnected", logCode, c.closeCode)
	}()
}

// checkHandshake refuses a request to /ws that is not a WebSocket opening
// handshake of version 13 (RFC 6455 4.2.1).
func checkHandshake(r *http.Request) error {
	switch {
	case !headerHasToken(r.Header, "Upgrade", "websocket") || !headerHasToken(r.Header, "Connection", "upgrade"):
		return pentecost.Errorf(pentecost.EVALIDATION, "This endpoint takes WebSocket connections only.")
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return pentecost.Errorf(pentecost.EVALIDATION, "Only WebSocket version 13 is supported.")
	case r.Header.Get("Sec-WebSocket-Key") == "":
		return pentecost.Errorf(pentecost.EVALIDATION, "The Sec-WebSocket-Key header is missing.")
	}
	return nil
}

// headerHasToken reports whether a comma-separated header lists token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// roleUnknown labels refusals before the role is known.
const roleUnknown role = 0

func roleOf(q query) role {
	switch {
	case q.role == "worker":
		return roleWorker
	case q.legacyCreate:
		return roleSpeaker
	case q.refresh:
		if q.role == "speaker" {
			return roleSpeaker
		}
		return roleListener
	case q.role == "listener", q.targetLanguage != "" && q.role != "speaker":
		return roleListener
	}
	return roleSpeaker
}

// join authenticates and admits the connection in its role.
func (s *Server) join(ctx context.Context, c *conn, q query) error {
	if err := s.allow(ctx, "ws-conn:"+q.client, s.ConnectionLimit); err != nil {
		return err
	}
	switch {
	case q.invalidFormat:
		return fieldError("audioFormat", "audioFormat must be json or binary.")
	case q.invalidCodec:
		return fieldError("codec", "codec must be pcm or opus.")
	case q.invalidSince:
		return fieldError("lastSequenceNumber", "lastSequenceNumber must be a non-negative integer.")
	case q.action != "" && q.action != "joinSession" && !q.refresh && !q.legacyCreate:
		return pentecost.Errorf(pentecost.EUNKNOWNACTION, "Unknown action.")
	case q.refresh && q.role != "speaker" && q.role != "listener":
		return fieldError("role", "role must be speaker or listener.")
	case q.role != "" && q.role != "speaker" && q.role != "listener" && q.role != "worker":
		return fieldError("role", "role must be speaker, listener or worker.")
	case c.role == roleSpeaker && q.targetLanguage != "" && !q.legacyCreate:
		return fieldError("targetLanguage", "targetLanguage is for listeners; a speaker connects without it.")
	case c.role == roleSpeaker && q.token == "" && q.role == "" && !q.legacyCreate:
		// Neither a token nor a language: say what either role needs.
		return pentecost.Errorf(pentecost.EAUTHREQUIRED, "A speaker token is required; a listener gives targetLanguage instead.")
	}
	if c.role != roleWorker {
		c.codec = q.codec
	}
	switch c.role {
	case roleWorker:
		return s.joinWorker(ctx, c, q)
	case roleListener:
		return s.joinListener(ctx, c, q)
	}
	if q.legacyCreate {
		return s.createSession(ctx, c, q)
	}
	return s.joinSpeaker(ctx, c, q)
}

func fieldError(field, msg string) error {
	return &pentecost.Error{Code: pentecost.EVALIDATIONFIELD, Message: msg, Details: map[string]string{"field": field}}
}

// allow applies a rate limit; a limiter that cannot answer lets the event
// through, since refusing every listener is worse than a lax limit.
func (s *Server) allow(ctx context.Context, key string, l pentecost.Limit) error {
	if s.RateLimiter == nil || l.Zero() {
		return nil
	}
	err := s.RateLimiter.Allow(ctx, key, l)
	if pentecost.ErrorCode(err) == pentecost.ERATELIMIT {
		return err
	}
	return nil
}

// reject tells the client why it was refused and closes: 1013 for a full
// session or a service that is unavailable, 1008 for the rest.
func (c *conn) reject(err error, sessionID string) {
	code := pentecost.ErrorCode(err)
	if code == pentecost.EINTERNAL {
		c.log.Error("join failed", logError, err)
	} else {
		c.log.Debug("join refused", logCode, code)
	}
	c.send(errorObj(err, sessionID))
	switch code {
	case pentecost.ESESSIONFULL, pentecost.EUNAVAILABLE, pentecost.EAUTHUNAVAILABLE:
		c.closeWith(CloseTryAgain, code)
	case pentecost.EINTERNAL:
		c.closeWith(CloseInternal, code)
	default:
		c.closeWith(ClosePolicy, code)
	}
}
