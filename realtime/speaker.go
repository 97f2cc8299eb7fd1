package realtime

import (
	"context"
	"encoding/base64"
	"strings"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/opuspcm"
)

// verifySpeaker turns the handshake's token into a speaker.
func (s *Server) verifySpeaker(ctx context.Context, token string) (*pentecost.User, error) {
	if token == "" {
		return nil, pentecost.Errorf(pentecost.EAUTHREQUIRED, "A speaker token is required.")
	}
	return s.Verifier.VerifyToken(ctx, token)
}

// createSession is the original system's createSession over the socket.
func (s *Server) createSession(ctx context.Context, c *conn, q query) error {
	u, err := s.verifySpeaker(ctx, q.token)
	if err != nil {
		return err
	}
	tier := pentecost.QualityTier(q.qualityTier)
	if tier == "" {
		tier = pentecost.QualityStandard
	}
	sess := &pentecost.Session{SourceLanguage: q.sourceLanguage, QualityTier: tier}
	uctx := pentecost.NewContextWithUser(ctx, u)
	if err := s.Sessions.CreateSession(uctx, sess); err != nil {
		return err
	}
	_, err = s.attachSpeaker(ctx, c, u, sess, false, func(state pentecost.BroadcastState) obj {
		return obj{"type": "sessionCreated", "sessionId": sess.ID, "sourceLanguage": sess.SourceLanguage,
			"qualityTier": sess.QualityTier, "connectionId": c.id, "expiresAt": pentecost.UnixMilli(sess.ExpiresAt),
			"broadcastState": state, "refreshTicket": s.issueTicket(c, sess.ID)}
	})
	if err != nil {
		return err
	}
	s.watchAccount(c, q.token)
	return nil
}

// joinSpeaker admits the owner of a session as its speaker (or a speaker refresh).
func (s *Server) joinSpeaker(ctx context.Context, c *conn, q query) error {
	u, err := s.verifySpeaker(ctx, q.token)
	if err != nil {
		return err
	}
	sess, err := s.lookupSession(ctx, q)
	if err != nil {
		return err
	}
	if sess.OwnerID != u.ID {
		return pentecost.Errorf(pentecost.EFORBIDDEN, "Only the session's speaker may connect as its speaker.")
	}
	counts, _ := s.Presence.Counts(ctx, sess.ID)
	ticket := s.issueTicket(c, sess.ID)
	_, err = s.attachSpeaker(ctx, c, u, sess, q.refresh, func(state pentecost.BroadcastState) obj {
		if q.refresh {
			return obj{"type": "connectionRefreshComplete", "role": "speaker", "sessionId": sess.ID, "connectionId": c.id,
				"broadcastState": state, "refreshTicket": ticket}
		}
		return obj{"type": "speakerConnected", "sessionId": sess.ID, "sourceLanguage": sess.SourceLanguage,
			"connectionId": c.id, "broadcastState": state, "listenerCount": counts.Total, "refreshTicket": ticket,
			"codec": codecName(c.codec)}
	})
	if err != nil {
		return err
	}
	if old := s.speakerTicket(q, c, sess.ID); q.refresh && old != "" {
		s.handOver(old)
	}
	s.watchAccount(c, q.token)
	if c.restored {
		s.sendStatus(ctx, c, "stateRestored", "")
	}
	return nil
}

// attachSpeaker makes c the session's speaker. A refresh keeps the old
// connection open (the client closes it); a new connection replaces the
// old one, which is closed with 4003. A speaker coming back within the
// grace period ends it. The reply built by reply is queued before c
// becomes the speaker, so it is the first message c receives.
func (s *Server) attachSpeaker(ctx context.Context, c *conn, u *pentecost.User, sess *pentecost.Session, refresh bool, reply func(pentecost.BroadcastState) obj) (*hubSession, error) {
	hs, err := s.hub.acquire(ctx, sess)
	if err != nil {
		return nil, err
	}
	hs.mu.Lock()
	if hs.ended {
		hs.mu.Unlock()
		s.hub.release(hs)
		return nil, pentecost.Errorf(pentecost.ESESSIONNOTFOUND, "Session not found.")
	}
	old := hs.speaker
	c.send(reply(hs.info.BroadcastState))
	inGrace := hs.grace != nil
	if inGrace {
		hs.grace.Stop()
		hs.grace = nil
	}
	hs.speaker = c
	hs.speakers[c] = struct{}{}
	if !refresh {
		hs.haveSeq = false // client numbering may restart on a new connection
	} else if old != nil && old != c {
		// The two connections are read on two goroutines: without this,
		// chunks sent on the new one could overtake the old one's last.
		c.holdAudioFor = old.readDone
	}
	c.session, c.user = hs, u
	hs.mu.Unlock()

	// Recorded before the event below, so that a listener joining in
	// between either hears the event or finds the speaker in presence.
	others, err := s.Presence.SpeakerJoin(ctx, hs.id, c.id)
	if err != nil {
		c.log.Warn("speaker presence", logError, err)
	}
	// The old connection was live when this one attached, even if it has
	// left presence since: the client closes it as soon as it reads this
	// one's reply, which goes out before SpeakerJoin, so a refresh must not
	// depend on which of the two the store saw first.
	others = others || (old != nil && old != c)
	if inGrace {
		s.hub.release(hs) // the grace period's reference
	}
	// Listeners hear speakerReconnected whenever a speaker arrives after a
	// time with none: back within the grace period, or for the first time
	// (they joined before the speaker; sessionJoined said
	// speakerConnected false). The name is kept for compatibility: the
	// original system's clients already handle it. A refresh or a
	// replacement, with another speaker connection still live, is no
	// arrival.
	if inGrace || !others {
		s.publishEvent(ctx, hs.id, &pentecost.SessionEvent{Type: pentecost.EventSpeakerReconnected})
	}
	if old != nil && old != c && !refresh {
		old.closeWith(CloseReplaced, "replaced by a new speaker connection")
	}
	s.speakerAttached(ctx, hs)
	s.touch(hs, true)
	c.restored = refresh || inGrace
	return hs, nil
}

// leaveSpeaker runs when a speaker connection ends. If it was the session's
// current speaker and the session goes on, the grace period starts.
func (s *Server) leaveSpeaker(c *conn) {
	s.unwatchAccount(c)
	hs := c.session
	if hs == nil {
		return
	}
	s.flushSpeakerPCM(c)
	hs.pub.flush(publishFlushWait) // its audio before speakerDisconnected
	hs.mu.Lock()
	delete(hs.speakers, c)
	current := hs.speaker == c
	if current {
		hs.speaker = nil
	}
	startGrace := current && !hs.ended && !c.ended.Load() && !s.isClosing()
	grace := s.SpeakerGrace
	if startGrace && grace > 0 {
		hs.refs++ // the grace period keeps the hub session
		user := c.user
		// The callback gets the period's number, not the timer: a timer
		// that fires before AfterFunc returns must not read the variable
		// being assigned (the race detector caught that at 50 ms grace).
		hs.graceGen++
		gen := hs.graceGen
		hs.grace = time.AfterFunc(grace, func() { s.graceExpired(hs, gen, user) })
	}
	hs.mu.Unlock()

	// Before speakerDisconnected is published, for the same reason as in
	// attachSpeaker; under presenceMu so that a cluster refresh that saw
	// this speaker cannot renew its entry after this (cluster.go).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	hs.presenceMu.RLock()
	if err := s.Presence.SpeakerLeave(ctx, hs.id, c.id); err != nil {
		c.log.Warn("speaker presence leave", logError, err) // the entry expires by itself
	}
	hs.presenceMu.RUnlock()
	cancel()

	switch {
	case startGrace && grace > 0:
		s.publishEvent(context.Background(), hs.id, &pentecost.SessionEvent{Type: pentecost.EventSpeakerDisconnected, Grace: grace})
	case startGrace:
		s.endForSpeakerTimeout(hs, c.user)
	}
	s.hub.release(hs)
}

// graceExpired ends the session when grace period gen is still current,
// i.e. the speaker did not come back and nothing cancelled the period.
func (s *Server) graceExpired(hs *hubSession, gen uint64, u *pentecost.User) {
	hs.mu.Lock()
	mine := hs.grace != nil && hs.graceGen == gen
	if mine {
		hs.grace = nil
	}
	hs.mu.Unlock()
	if !mine {
		return
	}
	defer s.hub.release(hs) // the reference the grace period held
	s.endForSpeakerTimeout(hs, u)
}

// endForSpeakerTimeout ends a session whose speaker did not come back.
func (s *Server) endForSpeakerTimeout(hs *hubSession, u *pentecost.User) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Sessions.EndSession(pentecost.NewContextWithUser(ctx, u), hs.id)
	if err != nil && pentecost.ErrorCode(err) != pentecost.ESESSIONENDED {
		s.Logger.Warn("end session after grace", logSession, hs.id, logError, err)
	}
	if err := s.endSession(ctx, hs.id, "speakerTimeout"); err != nil {
		s.Logger.Warn("announce session end", logSession, hs.id, logError, err)
	}
}

// touch records speaker activity in the store, at most every TouchInterval,
// without holding up the caller.
func (s *Server) touch(hs *hubSession, force bool) {
	now := s.Now()
	hs.mu.Lock()
	due := force || now.Sub(hs.lastTouch) >= s.TouchInterval
	if due {
		hs.lastTouch = now
	}
	hs.mu.Unlock()
	if !due {
		return
	}
	s.touches.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Sessions.TouchSession(ctx, hs.id); err != nil && pentecost.ErrorCode(err) != pentecost.ESESSIONENDED {
			s.Logger.Warn("touch session", logSession, hs.id, logError, err)
		}
	})
}

// refreshAudioHold bounds how long a refreshing speaker's audio waits for
// the old connection to finish: clients close it as soon as the refresh
// completes, so this is only reached by a client that never does.
const refreshAudioHold = 2 * time.Second

// publishSpeakerAudio queues one chunk from the speaker for the source
// streams (publish.go). seq, when given, drops chunks already received
// (across a refresh).
func (s *Server) publishSpeakerAudio(c *conn, data []byte, seq *uint64) {
	if c.tokenInvalid() {
		return // sent before the client saw its close (account.go)
	}
	if err := checkChunk(data, c.codec); err != nil {
		c.replyError(err)
		return
	}
	// The chunk's age counts from here, however long it then waits.
	now := s.Now()
	if c.holdAudioFor != nil {
		t := time.NewTimer(refreshAudioHold)
		select {
		case <-c.holdAudioFor:
		case <-t.C:
		}
		t.Stop()
		c.holdAudioFor = nil
	}
	hs := c.session
	hs.mu.Lock()
	if seq != nil {
		if hs.haveSeq && *seq <= hs.lastSeq {
			hs.mu.Unlock()
			s.metrics.duplicates.Inc()
			return
		}
		hs.haveSeq, hs.lastSeq = true, *seq
	}
	held := hs.info.BroadcastState.Paused || hs.info.BroadcastState.Muted || hs.info.Status != pentecost.SessionActive
	lang := hs.info.SourceLanguage
	pcm := hs.info.AudioFormat == pentecost.AudioPCM16 || hs.info.AudioFormat == ""
	hs.mu.Unlock()
	s.metrics.framesIn.Inc()
	chunks := [][]byte{data}
	if c.codec == pentecost.CodecOpus {
		// Decoded even while held, so that the codec's state follows the
		// speaker and the first words after a pause come out clean.
		var err error
		if chunks, err = s.decodeOpus(c, data); err != nil {
			c.replyError(err)
			return
		}
	}
	for _, ch := range chunks {
		if pcm {
			s.checkAudio(c, ch, held)
		}
	}
	if held {
		return
	}
	if c.codec == pentecost.CodecOpus {
		// The packet for listeners who take Opus; its PCM, 100 ms at a
		// time, for the worker and listeners who take PCM.
		s.pushAudio(c, hs.key(lang, pentecost.CodecOpus), pentecost.CodecOpus, data, now)
		for _, ch := range chunks {
			s.pushAudio(c, hs.key(lang, pentecost.CodecPCM), pentecost.CodecPCM, ch, now)
		}
		return
	}
	// Without an encoder in the server, listeners who take Opus get the
	// PCM too, on their own stream.
	s.pushAudio(c, hs.key(lang, pentecost.CodecPCM), pentecost.CodecPCM, data, now)
	s.pushAudio(c, hs.key(lang, pentecost.CodecOpus), pentecost.CodecPCM, data, now)
}

// pushAudio queues a speaker's audio for one stream. Every stream gets a
// frame of its own: the broker numbers each.
func (s *Server) pushAudio(c *conn, key pentecost.StreamKey, codec string, data []byte, now time.Time) {
	f := &pentecost.Frame{Kind: pentecost.FrameAudio, Language: key.Language, Codec: codec, Data: data, Time: now}
	c.session.pub.push(pubItem{key: key, f: f, c: c})
}

// checkChunk bounds a chunk of audio in codec: PCM chunks between
// MinAudioChunk and MaxAudioChunk, Opus packets up to MaxAudioChunk that
// follow RFC 6716's framing. Errors: EINVALIDAUDIO.
func checkChunk(data []byte, codec string) error {
	if codec == pentecost.CodecOpus {
		if len(data) > pentecost.MaxAudioChunk {
			return pentecost.Errorf(pentecost.EINVALIDAUDIO, "Opus packets must be at most %d KB.", pentecost.MaxAudioChunk>>10)
		}
		if _, err := opuspcm.Duration(data); err != nil {
			return pentecost.Errorf(pentecost.EINVALIDAUDIO, "Not an Opus packet: every binary frame must hold exactly one (RFC 6716).")
		}
		return nil
	}
	if len(data) < pentecost.MinAudioChunk || len(data) > pentecost.MaxAudioChunk {
		return pentecost.Errorf(pentecost.EINVALIDAUDIO, "Audio chunks must be between %d bytes and %d KB.", pentecost.MinAudioChunk, pentecost.MaxAudioChunk>>10)
	}
	return nil
}

// decodeOpus decodes a speaker's packet, returning the 100 ms chunks of
// PCM it completes. Errors: EINVALIDAUDIO.
func (s *Server) decodeOpus(c *conn, packet []byte) ([][]byte, error) {
	if c.opus == nil {
		d, err := opuspcm.NewDecoder()
		if err != nil {
			return nil, err
		}
		c.opus = d
	}
	chunks, err := c.opus.Decode(packet)
	if err != nil {
		return nil, pentecost.Errorf(pentecost.EINVALIDAUDIO, "The Opus packet does not decode.")
	}
	return chunks, nil
}

// flushSpeakerPCM publishes the PCM an Opus speaker's decoder gathered
// under a chunk, when the speaker leaves or ends the session: its last
// words reach the worker and PCM listeners too. Reader only.
func (s *Server) flushSpeakerPCM(c *conn) {
	if c.opus == nil || c.session == nil {
		return
	}
	rest := c.opus.Flush()
	if len(rest) < pentecost.MinAudioChunk {
		return
	}
	hs := c.session
	hs.mu.Lock()
	held := hs.info.BroadcastState.Paused || hs.info.BroadcastState.Muted || hs.info.Status != pentecost.SessionActive
	lang := hs.info.SourceLanguage
	hs.mu.Unlock()
	if !held {
		s.pushAudio(c, hs.key(lang, pentecost.CodecPCM), pentecost.CodecPCM, rest, s.Now())
	}
}

// handleSpeaker runs a speaker's actions.
func (s *Server) handleSpeaker(ctx context.Context, c *conn, m *Message) {
	if c.tokenInvalid() {
		return // no control, no endSession on a token refused meanwhile
	}
	hs := c.session
	upd := pentecost.BroadcastStateUpdate{}
	yes, no := true, false
	switch m.Action {
	case "sendAudio":
		data, err := base64.StdEncoding.DecodeString(m.AudioData)
		if err != nil {
			c.replyError(pentecost.Errorf(pentecost.EINVALIDAUDIO, "audioData is not valid base64."))
			return
		}
		s.publishSpeakerAudio(c, data, m.SequenceNumber)
		return
	case "getSessionStatus":
		s.sendStatus(ctx, c, "sessionStatus", "requested")
		return
	case "endSession":
		s.flushSpeakerPCM(c)
		hs.pub.flush(publishFlushWait) // its last words before the end
		_, err := s.Sessions.EndSession(pentecost.NewContextWithUser(ctx, c.user), hs.id)
		if err != nil && pentecost.ErrorCode(err) != pentecost.ESESSIONENDED {
			c.replyError(err)
			return
		}
		if err := s.endSession(ctx, hs.id, "ended"); err != nil {
			c.replyError(err)
		}
		return
	case "controlSession":
		switch strings.ToLower(m.Command) {
		case "pause":
			upd.Paused = &yes
		case "resume":
			upd.Paused = &no
		case "mute":
			upd.Muted = &yes
		case "unmute":
			upd.Muted = &no
		default:
			c.replyError(fieldError("command", "command must be pause, resume, mute or unmute."))
			return
		}
	case "pauseBroadcast":
		upd.Paused = &yes
	case "resumeBroadcast":
		upd.Paused = &no
	case "muteBroadcast":
		upd.Muted = &yes
	case "unmuteBroadcast":
		upd.Muted = &no
	case "setVolume":
		if m.VolumeLevel == nil || *m.VolumeLevel < 0 || *m.VolumeLevel > 1 {
			c.replyError(fieldError("volumeLevel", "volumeLevel must be between 0.0 and 1.0."))
			return
		}
		upd.Volume = m.VolumeLevel
	case "speakerStateChange":
		if m.State == nil || len(*m.State) > 64 {
			c.replyError(fieldError("state", "state is required, at most 64 bytes of UTF-8."))
			return
		}
		upd.SpeakerState = m.State
	case "changeLanguage", "pausePlayback", "resumePlayback":
		c.replyError(pentecost.Errorf(pentecost.EACTIONNOTALLOWED, "Speakers cannot use %s.", m.Action))
		return
	default:
		c.replyError(pentecost.Errorf(pentecost.EUNKNOWNACTION, "Unknown action."))
		return
	}
	hs.pub.flush(publishFlushWait) // audio sent before a pause is heard before it
	sess, err := s.Sessions.UpdateSession(pentecost.NewContextWithUser(ctx, c.user), hs.id, pentecost.SessionUpdate{BroadcastState: &upd})
	if err != nil {
		c.replyError(err)
		return
	}
	if err := s.SessionUpdated(ctx, sess); err != nil {
		c.replyError(err)
	}
}
