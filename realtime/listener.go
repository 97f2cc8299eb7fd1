package realtime

import (
	"context"
	"slices"

	"github.com/pentecost/pentecost"
)

// findLive finds a session that can be joined: unknown and ended sessions
// are alike SESSION_NOT_FOUND to a joining client.
func (s *Server) findLive(ctx context.Context, id string) (*pentecost.Session, error) {
	if id == "" {
		return nil, pentecost.Errorf(pentecost.EINVALIDSESSIONID, "sessionId is required.")
	}
	// A session this node already serves is known to the hub, kept current
	// by its events: the store lookup was 60 % of the server's CPU per join
	// (pprof, 10,000 joins; a SQLite read transaction and statement prepare
	// each time). A join racing the session's end is refused by subscribe.
	if sess := s.hub.liveSession(id); sess != nil {
		return sess, nil
	}
	sess, err := s.Sessions.FindSessionByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if sess.Status == pentecost.SessionEnded {
		return nil, pentecost.Errorf(pentecost.ESESSIONNOTFOUND, "Session not found.")
	}
	return sess, nil
}

// checkLanguage validates a listener's language and that it is offered.
func (s *Server) checkLanguage(lang, source string) (string, error) {
	l, err := pentecost.ValidateLanguage(lang)
	if err != nil {
		return "", err
	}
	if l != source && len(s.TargetLanguages) > 0 && !slices.Contains(s.TargetLanguages, l) {
		return "", &pentecost.Error{Code: pentecost.EUNSUPPORTEDLANG, Message: "Language is not offered.", Details: map[string]string{"language": l}}
	}
	return l, nil
}

// joinListener admits a listener (or a listener refresh: admitListener
// counts it as a join when it replaces nothing).
func (s *Server) joinListener(ctx context.Context, c *conn, q query) error {
	if !q.refresh {
		if err := s.allow(ctx, "ws-join:"+q.client, s.JoinLimit); err != nil {
			return err
		}
	}
	if q.targetLanguage == "" {
		return fieldError("targetLanguage", "targetLanguage is required.")
	}
	sess, err := s.lookupSession(ctx, q)
	if err != nil {
		return err
	}
	lang, err := s.checkLanguage(q.targetLanguage, sess.SourceLanguage)
	if err != nil {
		return err
	}
	counts, err := s.admitListener(ctx, c, q, sess, lang)
	if err != nil {
		return err
	}
	hs, err := s.hub.acquire(ctx, sess)
	if err != nil {
		s.presenceLeave(sess.ID, c)
		return err
	}
	reply := obj{"type": "sessionJoined", "targetLanguage": lang, "sourceLanguage": sess.SourceLanguage}
	if q.refresh {
		reply = obj{"type": "connectionRefreshComplete", "role": "listener", "targetLanguage": lang}
	}
	reply["sessionId"], reply["connectionId"] = sess.ID, c.id
	reply["audioFormat"] = map[bool]string{false: "json", true: "binary"}[c.binary]
	reply["codec"] = codecName(c.codec)
	reply["refreshTicket"] = s.issueTicket(c, sess.ID)
	// first runs under hs.mu: c becomes a listener, reads the state and
	// queues its reply in one step, so that the reply is its first message
	// and a state event handled before it is in the reply, one handled
	// after it follows the reply.
	err = hs.subscribe(ctx, c, hs.key(lang, c.codec), q.hasSince, q.since, q.epoch, func(pos pentecost.StreamPosition) {
		hs.listeners[c] = struct{}{}
		c.session, c.language = hs, lang
		reply["broadcastState"] = hs.info.BroadcastState
		reply["epoch"], reply["sequenceNumber"] = pos.Epoch, pos.Last
		reply["speakerConnected"] = s.speakerConnected(ctx, hs)
		c.send(reply)
	})
	if err != nil {
		if c.session != nil {
			s.leaveListener(c)
		} else {
			s.presenceLeave(sess.ID, c)
			s.hub.release(hs)
		}
		return err
	}
	s.translationNotice(ctx, c, sess, lang)
	s.countsChanged(hs, counts)
	return nil
}

// speakerConnected reports whether a speaker connection of the session is
// live on any node. Called with hs.mu held, while a joining listener
// becomes one of hs.listeners: a speaker arriving or leaving records it in
// presence before publishing its event, whose handler waits for hs.mu, so
// the listener either sees the change here or hears its event after its
// reply. When presence cannot answer, this node's view stands in.
func (s *Server) speakerConnected(ctx context.Context, hs *hubSession) bool {
	ok, err := s.Presence.SpeakerConnected(ctx, hs.id)
	if err != nil {
		s.Logger.Warn("speaker presence", logSession, hs.id, logError, err)
		return hs.speaker != nil
	}
	return ok
}

// translationNotice tells a listener when nobody produces its language.
// The listener already receives the session's translation events.
func (s *Server) translationNotice(ctx context.Context, c *conn, sess *pentecost.Session, lang string) {
	if lang == sess.SourceLanguage {
		return
	}
	langs, err := s.Presence.ProducedLanguages(ctx, sess.ID)
	if err == nil && slices.Contains(langs, lang) {
		return
	}
	c.send(obj{"type": "translationUnavailable", "sessionId": sess.ID, "targetLanguage": lang,
		"message": "No translation is being produced for this language right now."})
	// A worker that claimed the language since the read above (on any
	// node) may have had its translationAvailable queued before our
	// notice: look again, so the listener's last word is the right one. A
	// claim after this read publishes its event after our notice.
	langs, err = s.Presence.ProducedLanguages(ctx, sess.ID)
	if err == nil && slices.Contains(langs, lang) {
		c.send(obj{"type": pentecost.EventTranslationAvailable, "sessionId": sess.ID, "targetLanguage": lang})
	}
}

// leaveListener removes a listener from the hub and presence. It is safe to
// call twice: presence ignores a second leave.
func (s *Server) leaveListener(c *conn) {
	hs := c.session
	if hs == nil {
		return
	}
	// Shared presenceMu: a cluster refresh that saw c finishes before c's
	// entry is removed, so it cannot put the entry back (hub.go).
	hs.presenceMu.RLock()
	hs.mu.Lock()
	_, present := hs.listeners[c]
	delete(hs.listeners, c)
	hs.unsubscribeLocked(c, hs.key(c.language, c.codec))
	hs.mu.Unlock()
	s.presenceLeave(hs.id, c)
	hs.presenceMu.RUnlock()
	if present {
		s.hub.release(hs)
	}
}

func (s *Server) presenceLeave(id string, c *conn) {
	ctx, cancel := context.WithTimeout(context.Background(), s.CloseTimeout*5)
	defer cancel()
	counts, left, err := s.Presence.Leave(ctx, id, c.id)
	if err != nil {
		c.log.Warn("presence leave", logError, err)
		return
	}
	if left {
		if hs := s.hub.session(id); hs != nil {
			s.countsChanged(hs, counts)
		} else {
			s.hub.markDirty(id)
		}
	}
}

// handleListener runs a listener's actions.
func (s *Server) handleListener(ctx context.Context, c *conn, m *Message) {
	hs := c.session
	switch m.Action {
	case "changeLanguage":
		hs.mu.Lock()
		source := hs.info.SourceLanguage
		hs.mu.Unlock()
		lang, err := s.checkLanguage(m.TargetLanguage, source)
		if err != nil {
			c.replyError(err)
			return
		}
		prev := c.language
		if lang == prev {
			reply := obj{"type": "languageChanged", "sessionId": hs.id, "targetLanguage": lang, "previousLanguage": prev}
			if pos, err := s.Broker.Position(ctx, hs.key(lang, c.codec)); err == nil {
				reply["epoch"], reply["sequenceNumber"] = pos.Epoch, pos.Last
			}
			c.send(reply)
			return
		}
		// Shared presenceMu until c.language is the new language: a cluster
		// refresh must not snapshot the old one and write it back after
		// the change (hub.go).
		hs.presenceMu.RLock()
		counts, err := s.Presence.ChangeLanguage(ctx, hs.id, c.id, lang)
		if err != nil {
			hs.presenceMu.RUnlock()
			c.replyError(err)
			return
		}
		hs.mu.Lock()
		hs.unsubscribeLocked(c, hs.key(prev, c.codec))
		c.language = lang
		hs.mu.Unlock()
		hs.presenceMu.RUnlock()
		err = hs.subscribe(ctx, c, hs.key(lang, c.codec), false, 0, "", func(pos pentecost.StreamPosition) {
			c.send(obj{"type": "languageChanged", "sessionId": hs.id, "targetLanguage": lang, "previousLanguage": prev,
				"epoch": pos.Epoch, "sequenceNumber": pos.Last})
		})
		if err != nil {
			c.replyError(err)
			return
		}
		sess := pentecost.Session{ID: hs.id, SourceLanguage: source}
		s.translationNotice(ctx, c, &sess, lang)
		s.countsChanged(hs, counts)
	case "pausePlayback":
		c.paused.Store(true)
		c.send(obj{"type": "playbackPaused", "sessionId": hs.id})
	case "resumePlayback":
		c.paused.Store(false)
		c.send(obj{"type": "playbackResumed", "sessionId": hs.id})
	case "sendAudio", "controlSession", "pauseBroadcast", "resumeBroadcast", "muteBroadcast", "unmuteBroadcast",
		"setVolume", "speakerStateChange", "endSession", "getSessionStatus":
		c.replyError(pentecost.Errorf(pentecost.EACTIONNOTALLOWED, "Listeners cannot use %s.", m.Action))
	default:
		c.replyError(pentecost.Errorf(pentecost.EUNKNOWNACTION, "Unknown action."))
	}
}
