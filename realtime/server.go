// Package realtime serves Pentecost's WebSocket protocol (docs/protocol.md):
// speakers, listeners and translation workers on GET /ws, and the hub that
// fans each frame out to the listeners of its language.
package realtime

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pentecost/pentecost"
	pthttp "github.com/pentecost/pentecost/http"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the Server's settings. The durations are the original
// system's where it had one.
const (
	DefaultHeartbeatInterval    = 30 * time.Second
	DefaultHeartbeatTimeout     = 90 * time.Second
	DefaultRefreshAfter         = 100 * time.Minute
	DefaultWarningAfter         = 105 * time.Minute
	DefaultMaxConnDuration      = 120 * time.Minute
	DefaultSpeakerGrace         = 2 * time.Minute
	DefaultStatusInterval       = 30 * time.Second
	DefaultMaxListeners         = 500
	DefaultReadLimit            = 1 << 20
	DefaultQueueFrames          = 500 // 10 s of 20 ms audio
	DefaultWriteTimeout         = 10 * time.Second
	DefaultFrameTimeout         = 10 * time.Second
	DefaultWriteCoalesce        = 45 * time.Millisecond
	DefaultCoalesceAbove        = 60000
	DefaultCloseTimeout         = time.Second
	DefaultDrainTimeout         = 10 * time.Second
	DefaultCountFlushInterval   = 250 * time.Millisecond
	DefaultWorkerUpdateInterval = time.Second
	DefaultTouchInterval        = time.Minute
	// DefaultAccountCheckInterval: a removed speaker is cut off within 5 s,
	// for one token verification per live speaker per 5 s (account.go).
	DefaultAccountCheckInterval = 5 * time.Second
	// DefaultMaxFrameAge: audio more than 2 s old when it reaches a node's
	// hub is skipped (hub.go). Far above a healthy path (ms) and NTP's skew
	// between nodes (ms), far below the 10 s of history a resume may ask for.
	DefaultMaxFrameAge = 2 * time.Second
)

// Log keys.
const (
	logConn    = "conn"
	logRole    = "role"
	logSession = "sessionId"
	logCode    = "code"
	logError   = "error"
	logReason  = "reason"
	logWorker  = "worker"
	logLang    = "language"
)

// Server is the WebSocket endpoint and hub. Set its fields, call Open, mount
// it (it is an http.Handler) at GET /ws, and call Shutdown or Close at the end.
type Server struct {
	// Logger receives connection logs; ids are hashed, tokens and IPs never logged.
	Logger *slog.Logger

	// Sessions, Verifier, Presence and Broker are required.
	Sessions pentecost.SessionService
	Verifier pentecost.TokenVerifier
	Presence pentecost.Presence
	Broker   pentecost.Broker
	// WorkerVerifier checks translation workers; when nil workers are refused.
	WorkerVerifier pentecost.WorkerVerifier
	// RateLimiter enforces the limits below; when nil nothing is limited.
	RateLimiter pentecost.RateLimiter
	// Registerer receives the metrics; when nil they are not registered.
	Registerer prometheus.Registerer

	// Now returns the current time for timestamps and timers.
	Now func() time.Time
	// ClientIP returns the client address used for rate limits; the default
	// is the peer address. Wire the HTTP layer's trusted-proxy logic here.
	ClientIP func(r *http.Request) string
	// ClientKey returns the key every per-client limit counts the client
	// under: its network, as pthttp.ClientKey cuts it (an IPv4 address, an
	// IPv6 /64). The default is pthttp.ClientKey of ClientIP with the
	// default prefix lengths. Wire it like the HTTP API's, so that one
	// client is one client everywhere.
	ClientKey func(r *http.Request) string

	// AllowedOrigins lists origins ("https://example.org") allowed besides
	// the server's own; "*" allows any. Handshakes without Origin are allowed.
	AllowedOrigins []string
	// TargetLanguages, when set, are the only languages listeners may pick
	// (besides each session's source language); empty allows every language.
	TargetLanguages []string

	HeartbeatInterval time.Duration // WebSocket pings
	HeartbeatTimeout  time.Duration // silence before closing with 4000
	// RefreshAfter, WarningAfter and MaxConnDuration time a connection's
	// connectionRefreshRequired, connectionWarning and close (4002); 0 disables each.
	RefreshAfter    time.Duration
	WarningAfter    time.Duration
	MaxConnDuration time.Duration
	// SpeakerGrace is how long a dropped speaker may take to come back
	// before the session ends; 0 ends it at once.
	SpeakerGrace time.Duration
	// SilenceWarning is how long the speaker's microphone may stay silent
	// (below -55 dBFS) while the session is live, not paused or muted,
	// before the speaker's page is warned (audioWarning); 0 never warns.
	SilenceWarning time.Duration
	StatusInterval time.Duration // periodic sessionStatus to speakers
	MaxListeners   int           // per session; 0 means no cap

	// ConnectionLimit limits handshakes per client IP, JoinLimit listener
	// joins per IP, HeartbeatLimit heartbeats per connection.
	ConnectionLimit pentecost.Limit
	JoinLimit       pentecost.Limit
	HeartbeatLimit  pentecost.Limit
	// MaxConnsPerClient caps the WebSocket connections one client (its
	// ClientKey) holds open on this node at once; a handshake over it is
	// answered 429 RATE_LIMIT_EXCEEDED before the upgrade (limits.go).
	// 0 means no cap.
	MaxConnsPerClient int
	// SessionMissLimit limits a client's joins naming a session that does
	// not exist, as pthttp.Limits.SessionMisses does lookups over HTTP,
	// counted under the same key of RateLimiter (pthttp.LookupLimiter).
	SessionMissLimit pentecost.Limit
	// Lookups enforces SessionMissLimit; when nil, Open makes one. Give the
	// HTTP API the same one (pthttp.Server.Lookups), so that a client
	// refused by one is refused by the other.
	Lookups *pthttp.LookupLimiter
	// TicketKey signs refresh tickets (ticket.go). Nodes sharing Redis
	// must share it, so that a refresh landing on another node is
	// verified there; when empty, Open makes a random one.
	TicketKey []byte
	// RefreshHandover is how long a connection a refresh replaced may stay
	// open before the server closes it with 4002 (limits.go); 0 means
	// DefaultRefreshHandover.
	RefreshHandover time.Duration

	ReadLimit    int64         // largest client message; larger closes with 1009
	QueueFrames  int           // outgoing queue bound per connection
	WriteTimeout time.Duration // a write blocked this long drops the connection (4001)
	// WriteCoalesce is the longest an audio frame is held back (queued
	// without waking the writer) to go out in one write with the next ones
	// (0: never). CoalesceAbove is the audio deliveries per second that one
	// write per frame may serve: above it, over the last quarter second, a
	// listener's writes carry two frames, above twice it three, and so on
	// within WriteCoalesce (writer.go, coalesceBatch); 0 means as many as
	// WriteCoalesce allows.
	WriteCoalesce time.Duration
	CoalesceAbove int
	// NoIOURing makes fan-out write each listener with write(2) rather
	// than many at once through io_uring (sendring.go), which is used
	// where the kernel allows it.
	NoIOURing    bool
	CloseTimeout time.Duration // wait for the peer's close reply
	DrainTimeout time.Duration // how long Shutdown waits for clients to move

	// MaxFrameAge is the oldest audio a connection is sent. A frame whose
	// Time (when a server received it from its speaker or worker, on
	// whichever node) is older than this when it reaches this node's hub,
	// after a broker outage or any other backlog, or when a resuming
	// connection's replay would include it, is skipped, and the connection
	// is told with audioSkipped before its next audio (docs/protocol.md).
	// It compares clocks of different nodes: keep them in step (NTP).
	// Audio that waited this long to be published (a broker that hangs) is
	// dropped unpublished (publish.go). Captions are never skipped. 0 sends
	// audio however old.
	MaxFrameAge time.Duration

	// FrameTimeout bounds a message in progress: once a frame's header has
	// arrived, the rest of it and of the fragmented message it begins must
	// follow within FrameTimeout, or the connection is closed with 4000
	// (a begun frame holds a reader and memory). The deadline is renewed
	// lazily (conn.go), so a stall may be cut after FrameTimeout/2: clients
	// should finish a message within that. Silence between messages is
	// the heartbeat timeout's business; 0 disables.
	FrameTimeout time.Duration

	// PresenceRefresh, when set (several nodes sharing Redis), is how often
	// this node refreshes its listeners' presence and workers' claims, and
	// tells other nodes its speakers are still here (cluster.go). It must be
	// well under the shared presence's expiry; 0 (one node) disables it.
	PresenceRefresh time.Duration

	CountFlushInterval   time.Duration // batching of SetListenerCount
	WorkerUpdateInterval time.Duration // how often workers learn of demand changes
	TouchInterval        time.Duration // how often an active speaker touches its session

	// AccountCheckInterval is how often each live speaker connection's
	// token is verified again, as a join would verify it: a token refused
	// now (account removed, password changed, token expired) closes the
	// connection with 4004 (account.go). 0 never checks.
	AccountCheckInterval time.Duration

	hub     *hub
	metrics *metrics

	// claimMu serialises the language claims and releases of every worker
	// connection on this server; they are rare, and a claim's check and its
	// event must not interleave with another's.
	claimMu sync.Mutex
	// touches are the store writes of speaker activity in flight (touch).
	touches sync.WaitGroup
	load    loadMeter
	rings   ringPool
	cluster *cluster
	// accounts are the live speakers whose tokens are checked (account.go).
	accounts accountChecks
	// clients are this node's connections by client (limits.go).
	clients *clients

	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	opened  bool
	closing bool
}

// NewServer returns a Server with default settings.
func NewServer() *Server {
	return &Server{
		Logger:               slog.New(slog.DiscardHandler),
		Now:                  time.Now,
		HeartbeatInterval:    DefaultHeartbeatInterval,
		HeartbeatTimeout:     DefaultHeartbeatTimeout,
		RefreshAfter:         DefaultRefreshAfter,
		WarningAfter:         DefaultWarningAfter,
		MaxConnDuration:      DefaultMaxConnDuration,
		SpeakerGrace:         DefaultSpeakerGrace,
		SilenceWarning:       DefaultSilenceWarning,
		StatusInterval:       DefaultStatusInterval,
		MaxListeners:         DefaultMaxListeners,
		ConnectionLimit:      pentecost.Limit{Events: 20, Per: time.Minute},
		JoinLimit:            pentecost.Limit{Events: 10, Per: time.Minute},
		HeartbeatLimit:       pentecost.Limit{Events: 10, Per: time.Minute},
		ReadLimit:            DefaultReadLimit,
		QueueFrames:          DefaultQueueFrames,
		WriteTimeout:         DefaultWriteTimeout,
		FrameTimeout:         DefaultFrameTimeout,
		WriteCoalesce:        DefaultWriteCoalesce,
		MaxFrameAge:          DefaultMaxFrameAge,
		CoalesceAbove:        DefaultCoalesceAbove,
		CloseTimeout:         DefaultCloseTimeout,
		DrainTimeout:         DefaultDrainTimeout,
		CountFlushInterval:   DefaultCountFlushInterval,
		WorkerUpdateInterval: DefaultWorkerUpdateInterval,
		TouchInterval:        DefaultTouchInterval,
		AccountCheckInterval: DefaultAccountCheckInterval,
		MaxConnsPerClient:    DefaultMaxConnsPerClient,
		SessionMissLimit:     pthttp.DefaultSessionMisses,
		metrics:              newMetrics(),
	}
}

// Open checks the configuration, registers metrics and starts the timers.
func (s *Server) Open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened {
		return errors.New("realtime: already open")
	}
	switch {
	case s.Sessions == nil:
		return errors.New("realtime: Sessions is required")
	case s.Verifier == nil:
		return errors.New("realtime: Verifier is required")
	case s.Presence == nil:
		return errors.New("realtime: Presence is required")
	case s.Broker == nil:
		return errors.New("realtime: Broker is required")
	case s.QueueFrames < 1:
		return errors.New("realtime: QueueFrames must be at least 1")
	case s.ReadLimit < 1:
		return errors.New("realtime: ReadLimit must be positive")
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.ClientIP == nil {
		s.ClientIP = peerIP
	}
	s.openLimits()
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hub = newHub(s)
	if s.Registerer != nil {
		// The listener collector reads the hub: registered once it exists.
		if err := s.metrics.register(s.Registerer, newListenerCollector(s)); err != nil {
			s.cancel()
			return err
		}
	}
	s.openRings() // after the last check that can fail: Close closes them
	s.done = make(chan struct{})
	s.opened = true
	go s.tick()
	s.cluster = newCluster(s)
	go s.cluster.run(s.ctx)
	return nil
}

// Shutdown drains: it asks every client to refresh (so that it moves to
// another node or the restarted server), waits until they have gone or
// DrainTimeout or ctx ends, then closes the rest with 1001.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.beginClose() {
		return nil
	}
	for _, c := range s.hub.allConns() {
		s.sendRefreshRequired(c)
	}
	timer := time.NewTimer(s.DrainTimeout)
	defer timer.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
wait:
	for s.hub.connCount() > 0 {
		select {
		case <-ctx.Done():
			break wait
		case <-timer.C:
			break wait
		case <-poll.C:
		}
	}
	return s.finishClose()
}

// Close closes every connection with 1001 at once, without draining.
func (s *Server) Close() error {
	if !s.beginClose() {
		return nil
	}
	return s.finishClose()
}

func (s *Server) beginClose() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.opened || s.closing {
		return false
	}
	s.closing = true
	return true
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *Server) finishClose() error {
	s.hub.stopGraces()
	for _, c := range s.hub.allConns() {
		c.closeWith(CloseGoingAway, "server shutting down")
	}
	// A connection's teardown may take two close timeouts (our close
	// frame flushed, the peer's awaited) and a speaker's leave a flush of
	// its publish queue before its store writes. Waiting less let those
	// writes run after Close returned, against a store being closed.
	deadline := time.Now().Add(2*s.CloseTimeout + publishFlushWait + time.Second)
	for s.hub.connCount() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // bounded wait for readers to finish teardown
	}
	s.hub.flushCounts(context.Background())
	s.touches.Wait() // no store write after Close: the store closes next
	s.rings.close()
	s.cancel()
	<-s.done
	<-s.cluster.done
	return nil
}

// peerIP is the default ClientIP: the peer's address without port.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
