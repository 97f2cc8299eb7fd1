package realtime

import (
	"context"
	"sync"
	"time"

	"github.com/pentecost/pentecost"
)

// SessionUpdated tells every listener of s, on every node, about a change
// made outside the WebSocket (PATCH /sessions/{id}): they receive the same
// messages the speaker's controls produce. A status of ended ends the session.
func (s *Server) SessionUpdated(ctx context.Context, sess *pentecost.Session) error {
	if sess.Status == pentecost.SessionEnded {
		return s.SessionEnded(ctx, sess)
	}
	return s.Broker.Publish(ctx, controlKey(sess.ID), &pentecost.Frame{
		Kind:  pentecost.FrameEvent,
		Event: &pentecost.SessionEvent{Type: pentecost.EventSessionUpdated, Status: sess.Status, BroadcastState: sess.BroadcastState},
	})
}

// SessionEnded tells every connection of an ended session (DELETE
// /sessions/{id}, expiry) that it ended and closes them with 1000.
func (s *Server) SessionEnded(ctx context.Context, sess *pentecost.Session) error {
	return s.endSession(ctx, sess.ID, "ended")
}

func (s *Server) endSession(ctx context.Context, id, reason string) error {
	err := s.Broker.Publish(ctx, controlKey(id), &pentecost.Frame{
		Kind:  pentecost.FrameEvent,
		Event: &pentecost.SessionEvent{Type: pentecost.EventSessionEnded, Reason: reason},
	})
	if err != nil {
		return err
	}
	// Every node has handled the event by now (in memory) or will shortly
	// (shared broker); presence and history of the session are no longer needed.
	// Shared presenceMu: a refresh running here finishes first, so it
	// cannot put this node's listeners back (they leave anyway).
	if hs := s.hub.session(id); hs != nil {
		hs.presenceMu.RLock()
		_ = s.Presence.RemoveSession(ctx, id)
		hs.presenceMu.RUnlock()
	} else {
		_ = s.Presence.RemoveSession(ctx, id)
	}
	_ = s.Broker.DropSession(ctx, id)
	return nil
}

func controlKey(id string) pentecost.StreamKey {
	return pentecost.StreamKey{SessionID: id, Language: pentecost.ControlLanguage}
}

func (s *Server) publishEvent(ctx context.Context, id string, ev *pentecost.SessionEvent) {
	if err := s.Broker.Publish(ctx, controlKey(id), &pentecost.Frame{Kind: pentecost.FrameEvent, Event: ev}); err != nil {
		s.Logger.Warn("publish event", logSession, id, logError, err)
	}
}

// eventQueue holds a session's control events in order until a goroutine
// handles them.
type eventQueue struct {
	mu      sync.Mutex
	pending []*pentecost.Frame
	running bool
}

// onEvent is the broker handler of a session's control stream. With a
// shared broker it only queues the event: handlers take hs.mu, which a join
// holds while it waits for the broker to confirm a subscription, and the
// broker confirms on the same goroutine that delivers events — handling
// them there deadlocked joins (seen as 1011 in the cluster tests). The
// in-memory broker never waits like that and its callers rely on events
// being handled when Publish returns, so they stay synchronous.
func (hs *hubSession) onEvent(f *pentecost.Frame) {
	if hs.hub.srv.PresenceRefresh <= 0 {
		hs.handleEvent(f)
		return
	}
	q := &hs.events
	q.mu.Lock()
	q.pending = append(q.pending, f)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go hs.drainEvents()
	}
}

// drainEvents handles queued events in order until none is left.
func (hs *hubSession) drainEvents() {
	q := &hs.events
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.running = false
			q.pending = nil
			q.mu.Unlock()
			return
		}
		f := q.pending[0]
		q.pending[0] = nil
		q.pending = q.pending[1:]
		q.mu.Unlock()
		hs.handleEvent(f)
	}
}

// handleEvent turns one control event into messages for local connections.
func (hs *hubSession) handleEvent(f *pentecost.Frame) {
	ev := f.Event
	if ev == nil {
		return
	}
	s := hs.hub.srv
	switch ev.Type {
	case pentecost.EventSessionUpdated:
		hs.mu.Lock()
		old := hs.info.BroadcastState
		hs.info.Status, hs.info.BroadcastState = ev.Status, ev.BroadcastState
		hs.stateEvents++
		targets := hs.everyoneLocked()
		hs.mu.Unlock()
		for _, m := range s.stateMessages(hs.id, old, ev.BroadcastState) {
			broadcast(targets, m)
		}
	case pentecost.EventSessionEnded:
		hs.mu.Lock()
		if hs.ended {
			hs.mu.Unlock()
			return
		}
		hs.ended = true
		graceHeld := hs.grace != nil
		if graceHeld {
			hs.grace.Stop()
			hs.grace = nil
		}
		targets := hs.everyoneLocked()
		workers := make([]*conn, 0, len(hs.workers))
		for c := range hs.workers {
			workers = append(workers, c)
		}
		hs.mu.Unlock()
		if graceHeld {
			s.hub.release(hs) // the grace period's reference
		}
		m := s.jsonMsg(obj{"type": "sessionEnded", "sessionId": hs.id, "reason": ev.Reason})
		for _, c := range targets {
			c.ended.Store(true)
			c.enqueue(m)
			c.closeWith(CloseNormal, "session ended")
		}
		for _, c := range workers {
			c.enqueue(m)
			s.workerUnsubscribe(c, hs.id)
		}
	case pentecost.EventSpeakerDisconnected:
		s.cluster.speakerAway(hs.id)
		hs.broadcastListeners(s.jsonMsg(obj{"type": "speakerDisconnected", "sessionId": hs.id, "gracePeriodSeconds": seconds(ev.Grace)}))
	case pentecost.EventSpeakerReconnected:
		s.cluster.speakerSeen(hs, false) // the message below tells them
		hs.broadcastListeners(s.jsonMsg(obj{"type": "speakerReconnected", "sessionId": hs.id}))
	case eventSpeakerPresent:
		hs.onSpeakerPresent(ev)
	case eventSpeakerQuery:
		hs.onSpeakerQuery(ev)
	case pentecost.EventLanguageStatus:
		hs.onLanguageStatus(ev)
	case pentecost.EventTranslationAvailable, pentecost.EventTranslationUnavailable:
		o := obj{"type": ev.Type, "sessionId": hs.id, "targetLanguage": ev.Language}
		if ev.Type == pentecost.EventTranslationUnavailable {
			o["message"] = "No translation is being produced for this language right now."
			hs.forgetLanguageStatus(ev.Language)
		}
		m := s.jsonMsg(o)
		hs.mu.Lock()
		var targets []*conn
		for c := range hs.listeners {
			if c.language == ev.Language {
				targets = append(targets, c)
			}
		}
		sp := hs.speaker
		hs.mu.Unlock()
		broadcast(targets, m)
		if sp != nil {
			// The speaker's page shows which translations are running.
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			s.sendStatus(ctx, sp, "sessionStatus", "producedLanguagesChanged")
			cancel()
		}
	}
}

// everyoneLocked returns the session's local listeners and speakers.
func (hs *hubSession) everyoneLocked() []*conn {
	out := make([]*conn, 0, len(hs.listeners)+len(hs.speakers))
	for c := range hs.listeners {
		out = append(out, c)
	}
	for c := range hs.speakers {
		out = append(out, c)
	}
	return out
}

func (hs *hubSession) broadcastListeners(m *wsMsg) {
	hs.mu.Lock()
	targets := make([]*conn, 0, len(hs.listeners))
	for c := range hs.listeners {
		targets = append(targets, c)
	}
	hs.mu.Unlock()
	broadcast(targets, m)
}

func broadcast(targets []*conn, m *wsMsg) {
	if m == nil {
		return
	}
	for _, c := range targets {
		c.enqueue(m)
	}
}

// stateMessages turns a broadcast-state change into the original system's
// messages, each encoded once for all receivers.
func (s *Server) stateMessages(id string, old, cur pentecost.BroadcastState) []*wsMsg {
	var out []*wsMsg
	add := func(o obj) {
		o["sessionId"], o["broadcastState"] = id, cur
		out = append(out, s.jsonMsg(o))
	}
	if old.Paused != cur.Paused {
		if cur.Paused {
			add(obj{"type": "sessionPaused"})
		} else {
			add(obj{"type": "sessionResumed"})
		}
	}
	if old.Muted != cur.Muted {
		if cur.Muted {
			add(obj{"type": "broadcastMuted"})
		} else {
			add(obj{"type": "broadcastUnmuted"})
		}
	}
	if old.Volume != cur.Volume {
		add(obj{"type": "volumeChanged", "volumeLevel": cur.Volume})
	}
	if old.SpeakerState != cur.SpeakerState {
		add(obj{"type": "speakerStateChanged", "state": cur.SpeakerState})
	}
	return out
}
