package realtime

import (
	"context"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/pentecost/pentecost"
	pthttp "github.com/pentecost/pentecost/http"
)

// DefaultMaxConnsPerClient caps one client's open WebSocket connections on
// a node. A venue whose Wi-Fi puts every phone behind one public IPv4
// address is one client to a server on the internet, so the cap must let
// one such venue fill a session at the default listener cap (500), with
// its speaker, and with room for the phones that reconnect after a Wi-Fi
// blip while their dead connections still count (up to the heartbeat
// timeout): twice the listener cap. An idle listener costs the server
// about 5 KB (docs/performance.md: 4.8-5.4 KB of RSS each at 10,000), so
// 1,000 bound one address to some 5 MB per node. A server on the venue's
// own LAN sees each phone's own address.
const DefaultMaxConnsPerClient = 2 * DefaultMaxListeners

// DefaultRefreshHandover is how long a connection a refresh replaced may
// stay open: clients close it as soon as connectionRefreshComplete arrives
// (a speaker's once its last audio is read), so only a client keeping both
// meets it. The server then closes it with 4002. Without it a client could
// hold, uncounted, every connection it ever refreshed from.
const DefaultRefreshHandover = 10 * time.Second

// capRetryAfter is the Retry-After of a handshake over the connection
// cap: the client's connections close at their own pace, not on a clock.
const capRetryAfter = 10 * time.Second

// openLimits readies the per-client limits; Open calls it.
func (s *Server) openLimits() {
	if s.ClientKey == nil {
		ip := s.ClientIP
		s.ClientKey = func(r *http.Request) string {
			a, _ := netip.ParseAddr(ip(r))
			return pthttp.ClientKey(a, 0, 0)
		}
	}
	if len(s.TicketKey) == 0 {
		s.TicketKey = newTicketKey()
	}
	s.clients = newClients()
	if s.Lookups == nil {
		s.Lookups = pthttp.NewLookupLimiter(s.RateLimiter, s.SessionMissLimit)
	}
}

// clients are this node's connections by client key: how many each client
// holds (the connection cap), which they are (a refresh without a ticket
// replaces the client's own), and each by ID (a ticket names one).
type clients struct {
	mu       sync.Mutex
	keys     map[string]*clientSet
	ids      map[string]*conn
	replaced map[*conn]struct{} // replaced by a refresh, closing soon
}

type clientSet struct {
	n     int // handshakes admitted that have not ended, upgraded or not
	conns map[*conn]struct{}
}

func newClients() *clients {
	return &clients{keys: make(map[string]*clientSet), ids: make(map[string]*conn), replaced: make(map[*conn]struct{})}
}

// admit counts a handshake of client unless it already holds max (max <= 0:
// no cap). Each admit is ended by one release.
func (cl *clients) admit(client string, max int) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	set := cl.keys[client]
	if set == nil {
		set = &clientSet{conns: make(map[*conn]struct{})}
		cl.keys[client] = set
	}
	if max > 0 && set.n >= max {
		return false // set.n > 0: the set stays for its connections
	}
	set.n++
	return true
}

// add records the connection an admitted handshake became.
func (cl *clients) add(client string, c *conn) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if set := cl.keys[client]; set != nil {
		set.conns[c] = struct{}{}
	}
	cl.ids[c.id] = c
}

// release ends an admit; c is its connection, nil if it never had one.
func (cl *clients) release(client string, c *conn) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if c != nil {
		delete(cl.ids, c.id)
		delete(cl.replaced, c)
	}
	set := cl.keys[client]
	if set == nil {
		return
	}
	if c != nil {
		delete(set.conns, c)
	}
	if set.n--; set.n <= 0 {
		delete(cl.keys, client)
	}
}

// held is how many handshakes of client are admitted and not ended.
func (cl *clients) held(client string) int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if set := cl.keys[client]; set != nil {
		return set.n
	}
	return 0
}

// byID returns this node's connection with the given ID, if any.
func (cl *clients) byID(id string) *conn {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.ids[id]
}

// markReplaced records that a refresh replaced c; false if one did already.
func (cl *clients) markReplaced(c *conn) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if _, ok := cl.ids[c.id]; !ok {
		return false // gone already
	}
	if _, ok := cl.replaced[c]; ok {
		return false
	}
	cl.replaced[c] = struct{}{}
	return true
}

// oldestListener returns client's longest-open listener connection of a
// session and language on this node that no refresh has replaced yet:
// the one a refresh without a ticket replaces.
func (cl *clients) oldestListener(client, sessionID, lang string) *conn {
	cl.mu.Lock()
	var candidates []*conn
	if set := cl.keys[client]; set != nil {
		for c := range set.conns {
			if _, gone := cl.replaced[c]; !gone && c.role == roleListener && c.joined.Load() {
				candidates = append(candidates, c)
			}
		}
	}
	cl.mu.Unlock()
	// Outside cl.mu: the language is read under the session's lock.
	var oldest *conn
	for _, c := range candidates {
		if c.session == nil || c.session.id != sessionID || c.isClosing() || c.listenLanguage() != lang {
			continue
		}
		if oldest == nil || c.opened.Before(oldest.opened) {
			oldest = c
		}
	}
	return oldest
}

// connCap is the connection cap for a handshake. A refresh may go a tenth
// (at least one) over it: its client closes the old connection as soon
// as the new one is answered, so a client at the cap can still refresh.
func (s *Server) connCap(refresh bool) int {
	n := s.MaxConnsPerClient
	if n > 0 && refresh {
		n += max(1, n/10)
	}
	return n
}

// overCap reports whether client holds more connections than the cap
// without a refresh's headroom: a handshake that claimed to be a refresh
// but replaced nothing is a join, and must not keep the headroom.
func (s *Server) overCap(client string) bool {
	return s.MaxConnsPerClient > 0 && s.clients.held(client) > s.MaxConnsPerClient
}

// errTooManyConns answers a handshake over the connection cap.
func errTooManyConns() error {
	return &pentecost.Error{Code: pentecost.ERATELIMIT, RetryAfter: capRetryAfter,
		Message: "Too many connections are open from your network. Close some, or try again later."}
}

// lookupSession is findLive for a joining client, under its limit of
// lookups of sessions that do not exist (pthttp.LookupLimiter).
func (s *Server) lookupSession(ctx context.Context, q query) (*pentecost.Session, error) {
	if err := s.Lookups.Check(q.client); err != nil {
		return nil, err
	}
	sess, err := s.findLive(ctx, q.sessionID)
	if err = s.Lookups.Done(ctx, q.client, err); err != nil {
		return nil, err
	}
	return sess, nil
}

// admitListener records a joining listener in presence. A refresh takes
// the place of the connection it replaces, so it cannot pass the cap: the
// one its ticket names or, without a ticket that verifies (the original
// system's clients), the same client's oldest connection on this node to
// the session in that language. A refresh with nothing to replace (its
// connection left, was replaced already, or is on another node) is an
// ordinary join: it counts against the cap.
//
// Every refresh counts against the join limit, as a join does: a refresh
// that replaces a connection adds no listener, but left free it would let
// one client churn connections (and the work of joining) at the rate of
// the connection-attempt limit. Honest clients refresh rarely (every two
// hours when refreshes are on), so the limit costs them nothing; a drain
// sends each client once.
func (s *Server) admitListener(ctx context.Context, c *conn, q query, sess *pentecost.Session, lang string) (pentecost.PresenceCounts, error) {
	e := pentecost.PresenceEntry{SessionID: sess.ID, ConnID: c.id, Language: lang, Codec: c.codec}
	if q.refresh {
		if err := s.allow(ctx, "ws-join:"+q.client, s.JoinLimit); err != nil {
			return pentecost.PresenceCounts{}, err
		}
		how, old := "join", ""
		if t, ok := s.verifyTicket(q.ticket); ok {
			if t.role == roleListener && t.sessionID == sess.ID && t.connID != c.id {
				how, old = "ticket", t.connID
			}
		} else if oc := s.clients.oldestListener(q.client, sess.ID, lang); oc != nil {
			how, old = "sameClient", oc.id
		}
		if old != "" {
			counts, err := s.Presence.Replace(ctx, old, e)
			switch pentecost.ErrorCode(err) {
			case "":
				s.metrics.refreshes.WithLabelValues(how).Inc()
				s.handOver(old)
				return counts, nil
			case pentecost.ENOTFOUND:
				how = "join"
			default:
				return counts, err
			}
		}
		if s.overCap(q.client) {
			return pentecost.PresenceCounts{}, errTooManyConns()
		}
		s.metrics.refreshes.WithLabelValues(how).Inc()
	}
	return s.Presence.Join(ctx, e, s.MaxListeners, false)
}

// handOver closes the connection a refresh replaced, if it is on this node
// and its client has not closed it within RefreshHandover.
func (s *Server) handOver(oldID string) {
	old := s.clients.byID(oldID)
	if old == nil || !s.clients.markReplaced(old) {
		return
	}
	d := s.RefreshHandover
	if d <= 0 {
		d = DefaultRefreshHandover
	}
	time.AfterFunc(d, func() { old.closeWith(CloseMaxDuration, "replaced by a refresh") })
}

// speakerTicket returns the connection a speaker's refresh ticket names,
// or "" when it has none that verifies for this session. A speaker's
// refresh is the session owner's (the token says so), so the ticket only
// tells which connection it replaces, for handOver.
func (s *Server) speakerTicket(q query, c *conn, sessionID string) string {
	t, ok := s.verifyTicket(q.ticket)
	if !ok || t.role != roleSpeaker || t.sessionID != sessionID || t.connID == c.id {
		return ""
	}
	return t.connID
}
