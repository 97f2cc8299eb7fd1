package realtime

import (
	"context"
	"sync"
	"time"

	"github.com/pentecost/pentecost"
)

// Several nodes share one session through a shared Presence and Broker
// (Redis). What a node must do for that, besides fanning out, is here:
//
//   - keep its listeners' presence entries, its speaker's entry and its
//     workers' language claims and offers alive (Server.PresenceRefresh), so that a crashed node's listeners
//     leave the counts within the presence expiry, and a node cut off from
//     Redis puts its listeners back when it returns;
//   - close, after the refresh handover, its listener connections that a
//     refresh on another node replaced (the refresh reports them);
//   - store the counts of its sessions again after each refresh, since
//     listeners on other nodes (or a dead node's) change them;
//   - tell the other nodes that a session's speaker is connected here, and
//     end a session whose speaker's node died: the speaker grace period of
//     a speaker that left normally runs on its own node (speaker.go), but a
//     node that dies takes its timer with it.
//
// Speaker presence is a heartbeat on the session's control stream: the
// speaker's node publishes speakerPresent every PresenceRefresh. A node
// that has heard one and then hears none for speakerLostRefreshes periods
// tells its listeners speakerDisconnected; after SpeakerGrace more it ends
// the session, as the speaker's node would have. Any node may do it; the
// store makes the second EndSession a no-op (ESESSIONENDED).

// eventSpeakerPresent is the heartbeat of a session's speaker between
// nodes. It is internal: clients never see it.
const eventSpeakerPresent = "speakerPresent"

// eventSpeakerQuery asks the node holding a session's speaker, if any, to
// announce it at once: a node that subscribes after the speaker attached
// would otherwise know of no speaker until the next heartbeat, and could
// not tell its listeners if the speaker's node died before that.
const eventSpeakerQuery = "speakerQuery"

// speakerLostRefreshes is how many heartbeat periods without one mean the
// speaker's node is gone (one late heartbeat is not a death).
const speakerLostRefreshes = 3

// cluster is a node's part in a deployment of several.
type cluster struct {
	srv  *Server
	node string        // this node's random name, in its heartbeats
	done chan struct{} // closed when run returns

	mu       sync.Mutex
	sessions map[string]*clusterSession
}

// clusterSession is what this node knows of a session's speaker and counts.
type clusterSession struct {
	speakerSeen time.Time // last heartbeat or local sign of the speaker
	away        bool      // a node announced speakerDisconnected
	announced   bool      // this node told its listeners the speaker is gone
	total       int       // last total stored, -1 before the first
}

func newCluster(s *Server) *cluster {
	return &cluster{srv: s, node: newConnID(), done: make(chan struct{}), sessions: make(map[string]*clusterSession)}
}

// run refreshes every PresenceRefresh until ctx ends; with no refresh
// interval (one node) it returns at once.
func (cl *cluster) run(ctx context.Context) {
	defer close(cl.done)
	d := cl.srv.PresenceRefresh
	if d <= 0 {
		return
	}
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cl.refresh(ctx)
	}
}

// sessionLocked returns the state of a session, creating it. Called with cl.mu held.
func (cl *cluster) sessionLocked(id string) *clusterSession {
	cs := cl.sessions[id]
	if cs == nil {
		cs = &clusterSession{total: -1}
		cl.sessions[id] = cs
	}
	return cs
}

// refresh is one round: presence, counts and speakers of every session
// this node serves, then the workers' claims.
func (cl *cluster) refresh(ctx context.Context) {
	s := cl.srv
	now := s.Now()
	s.hub.mu.Lock()
	sessions := make([]*hubSession, 0, len(s.hub.sessions))
	for _, hs := range s.hub.sessions {
		sessions = append(sessions, hs)
	}
	s.hub.mu.Unlock()

	live := make(map[string]bool, len(sessions))
	for _, hs := range sessions {
		select {
		case <-hs.ready:
		default:
			continue // still subscribing
		}
		// Held from the snapshot until Refresh returns: a listener that
		// leaves or changes language meanwhile waits (presenceMu), since
		// Refresh puts back the entries it is given as they are.
		hs.presenceMu.Lock()
		hs.mu.Lock()
		if hs.ended {
			hs.mu.Unlock()
			hs.presenceMu.Unlock()
			continue
		}
		entries := make([]pentecost.PresenceEntry, 0, len(hs.listeners))
		for c := range hs.listeners {
			entries = append(entries, pentecost.PresenceEntry{SessionID: hs.id, ConnID: c.id, Language: c.language, Codec: c.codec})
		}
		speakerHere, graceHere := hs.speaker != nil, hs.grace != nil
		speakerID := ""
		if speakerHere {
			speakerID = hs.speaker.id
		}
		hs.mu.Unlock()
		live[hs.id] = true

		var replaced []string
		if len(entries) > 0 {
			var err error
			if replaced, err = s.Presence.Refresh(ctx, hs.id, entries); err != nil {
				s.Logger.Warn("refresh presence", logSession, hs.id, logError, err)
			}
		}
		// Under presenceMu too: a speaker leaving meanwhile removes its
		// entry after this renewal, not before.
		if speakerID != "" {
			if _, err := s.Presence.SpeakerJoin(ctx, hs.id, speakerID); err != nil {
				s.Logger.Warn("refresh speaker presence", logSession, hs.id, logError, err)
			}
		}
		hs.presenceMu.Unlock()
		// Refreshes that landed on other nodes replaced these: close them
		// as this node closes those it replaced itself, or their clients
		// would hold them, uncounted, for as long as they like.
		for _, id := range replaced {
			s.handOver(id)
		}
		cl.refreshCounts(ctx, hs)
		switch {
		case speakerHere:
			s.speakerAttached(ctx, hs)
		case !graceHere:
			cl.checkSpeaker(ctx, hs, now)
		}
	}
	cl.mu.Lock()
	for id := range cl.sessions {
		if !live[id] {
			delete(cl.sessions, id)
		}
	}
	cl.mu.Unlock()
	cl.refreshClaims(ctx)
}

// refreshCounts re-reads a session's counts, which other nodes change, and
// has them stored (and the local speaker told) when they moved.
func (cl *cluster) refreshCounts(ctx context.Context, hs *hubSession) {
	counts, err := cl.srv.Presence.Counts(ctx, hs.id)
	if err != nil {
		return // logged by the presence; the next round tries again
	}
	cl.mu.Lock()
	cs := cl.sessionLocked(hs.id)
	changed := cs.total != counts.Total
	cs.total = counts.Total
	cl.mu.Unlock()
	if changed {
		cl.srv.countsChanged(hs, counts)
	}
}

// checkSpeaker handles a session with no speaker on this node and no grace
// period running here: if the speaker's node has gone silent, tell local
// listeners, then end the session once the grace period has passed.
func (cl *cluster) checkSpeaker(ctx context.Context, hs *hubSession, now time.Time) {
	s := cl.srv
	lost := speakerLostRefreshes * s.PresenceRefresh
	cl.mu.Lock()
	cs := cl.sessionLocked(hs.id)
	seen := cs.speakerSeen
	if seen.IsZero() {
		cl.mu.Unlock()
		return // no speaker heard of yet: nothing to wait for
	}
	silent := now.Sub(seen)
	announce := silent >= lost && !cs.away && !cs.announced
	if announce {
		cs.announced = true
	}
	end := silent >= lost+s.SpeakerGrace
	cl.mu.Unlock()

	if announce {
		hs.broadcastListeners(s.jsonMsg(obj{"type": "speakerDisconnected", "sessionId": hs.id, "gracePeriodSeconds": seconds(s.SpeakerGrace)}))
	}
	if !end {
		return
	}
	hs.mu.Lock()
	owner := hs.info.OwnerID
	hs.mu.Unlock()
	s.Logger.Info("speaker's node gone: ending session after grace", logSession, hs.id)
	_, err := s.Sessions.EndSession(pentecost.NewContextWithUser(ctx, &pentecost.User{ID: owner}), hs.id)
	switch pentecost.ErrorCode(err) {
	case "", pentecost.ESESSIONENDED:
	default:
		s.Logger.Warn("end session after grace", logSession, hs.id, logError, err)
		return
	}
	if err := s.endSession(ctx, hs.id, "speakerTimeout"); err != nil {
		s.Logger.Warn("announce session end", logSession, hs.id, logError, err)
	}
}

// speakerSeen records a sign that the session's speaker is connected on
// some node. When this node's listeners were told the speaker was gone (by
// this node, or by the node whose grace period ran) and tell is set, they
// now hear it is back.
func (cl *cluster) speakerSeen(hs *hubSession, tell bool) {
	s := cl.srv
	cl.mu.Lock()
	cs := cl.sessionLocked(hs.id)
	told := cs.announced || cs.away
	cs.speakerSeen, cs.away, cs.announced = s.Now(), false, false
	cl.mu.Unlock()
	if told && tell {
		hs.broadcastListeners(s.jsonMsg(obj{"type": "speakerReconnected", "sessionId": hs.id}))
	}
}

// onSpeakerPresent handles a speaker heartbeat. One from another node
// while a grace period runs here means the speaker came back there: the
// grace period ends without ending the session.
func (hs *hubSession) onSpeakerPresent(ev *pentecost.SessionEvent) {
	s := hs.hub.srv
	if ev.Reason != s.cluster.node {
		hs.mu.Lock()
		stopped := hs.grace != nil && hs.speaker == nil
		if stopped {
			hs.grace.Stop()
			hs.grace = nil
		}
		hs.mu.Unlock()
		if stopped {
			s.hub.release(hs) // the grace period's reference
		}
	}
	s.cluster.speakerSeen(hs, true)
}

// speakerAway records that a node announced the speaker's disconnection:
// its grace period runs there, and listeners have been told.
func (cl *cluster) speakerAway(id string) {
	cl.mu.Lock()
	cl.sessionLocked(id).away = true
	cl.mu.Unlock()
}

// speakerAttached tells the other nodes at once that a speaker connected
// here, instead of at the next heartbeat.
func (s *Server) speakerAttached(ctx context.Context, hs *hubSession) {
	if s.PresenceRefresh > 0 {
		// Reason names the node, so that it can tell its own heartbeats.
		s.publishEvent(ctx, hs.id, &pentecost.SessionEvent{Type: eventSpeakerPresent, Reason: s.cluster.node})
	}
}

// refreshClaims renews the language claims of this node's workers, which
// expire in a shared presence like listener entries.
func (cl *cluster) refreshClaims(ctx context.Context) {
	s := cl.srv
	for _, c := range s.hub.allConns() {
		if c.role != roleWorker || !c.joined.Load() || c.wstate == nil {
			continue
		}
		cl.refreshWorkerClaims(ctx, c)
	}
}

// refreshWorkerClaims renews one worker's claims under claimMu, like the
// claims and releases themselves: a release (or the worker leaving) between
// the snapshot and ClaimLanguage would otherwise bring the claim back for
// the presence expiry, under a connection that no longer produces it.
func (cl *cluster) refreshWorkerClaims(ctx context.Context, c *conn) {
	s := cl.srv
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	type claim struct{ id, lang string }
	var claims []claim
	c.wstate.mu.Lock()
	for id, langs := range c.wstate.claims {
		for l := range langs {
			claims = append(claims, claim{id, l})
		}
	}
	offer := c.wstate.offer
	c.wstate.mu.Unlock()
	for _, k := range claims {
		if _, err := s.Presence.ClaimLanguage(ctx, k.id, k.lang, c.id); err != nil {
			s.Logger.Warn("refresh language claim", logSession, k.id, logError, err)
		}
	}
	if len(offer) > 0 {
		if err := s.Presence.OfferLanguages(ctx, c.id, offer); err != nil {
			s.Logger.Warn("refresh language offer", logError, err)
		}
	}
}

// subscribeControl subscribes a new hub session to its control stream,
// then reads the session: a change published before the subscription took
// effect (on another node, say) was missed, and the store has it. It
// closes hs.ready either way.
func (hs *hubSession) subscribeControl(ctx context.Context) error {
	s := hs.hub.srv
	unsub, err := s.Broker.Subscribe(ctx, controlKey(hs.id), hs.onEvent)
	var fresh *pentecost.Session
	if err == nil {
		fresh, _ = s.Sessions.FindSessionByID(ctx, hs.id)
	}
	hs.mu.Lock()
	hs.unsubCtl, hs.readyErr = unsub, err
	switch {
	case fresh == nil:
	case fresh.Status == pentecost.SessionEnded:
		hs.info.Status, hs.ended = fresh.Status, true
	case hs.stateEvents == 0:
		// An event handled since the subscription carries the whole state
		// and may be newer than this read (a PATCH landing after it):
		// fresh only stands in for changes published before we subscribed.
		hs.info.Status, hs.info.BroadcastState = fresh.Status, fresh.BroadcastState
	}
	hs.mu.Unlock()
	close(hs.ready)
	if err == nil && s.PresenceRefresh > 0 {
		s.publishEvent(ctx, hs.id, &pentecost.SessionEvent{Type: eventSpeakerQuery, Reason: s.cluster.node})
	}
	return err
}

// onSpeakerQuery answers another node's question: is the speaker here?
func (hs *hubSession) onSpeakerQuery(ev *pentecost.SessionEvent) {
	s := hs.hub.srv
	if ev.Reason == s.cluster.node {
		return
	}
	hs.mu.Lock()
	here := hs.speaker != nil
	hs.mu.Unlock()
	if here {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		defer cancel()
		s.speakerAttached(ctx, hs)
	}
}

// waitReady waits for another caller's subscribeControl of hs.
func (hs *hubSession) waitReady(ctx context.Context) error {
	select {
	case <-hs.ready:
	case <-ctx.Done():
		return pentecost.Errorf(pentecost.EUNAVAILABLE, "Server busy; try again.")
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.readyErr
}

// epochChanged is called by deliver, under st.mu, when a frame's epoch is
// not the one sub was in: the stream's numbering restarted (a shared
// broker lost its history, e.g. Redis restarted empty). The connection is
// told with a streamGap, and its position restarts in the new epoch.
func (st *hubStream) epochChanged(c *conn, sub *streamSub, f *pentecost.Frame) {
	if sub.epoch != "" {
		c.send(obj{"type": "streamGap", "sessionId": st.key.SessionID, "language": st.key.Language, "reason": "epochChanged",
			"epoch": f.Epoch, "lastSequenceNumber": sub.last, "firstSequenceNumber": f.Seq})
	}
	sub.epoch, sub.last = f.Epoch, 0
}
