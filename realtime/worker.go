package realtime

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"sort"
	"sync"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sessionid"
)

// MaxCaptionBytes bounds a caption's text.
const MaxCaptionBytes = 4 << 10

// maxConnIDBytes bounds a previousConnectionId; ours are much shorter.
const maxConnIDBytes = 64

// replyWorkerError answers a worker's action with an error that names the
// action, session and language it answers: a worker has several requests
// in flight and could not tell otherwise.
func (c *conn) replyWorkerError(m *Message, err error) {
	if pentecost.ErrorCode(err) == pentecost.EINTERNAL {
		c.log.Error("internal error", logError, err)
	}
	o := errorObj(err, m.SessionID)
	o["action"] = m.Action
	if m.TargetLanguage != "" {
		o["targetLanguage"] = m.TargetLanguage
	}
	c.send(o)
}

// workerState is what a worker connection has subscribed to and claimed.
type workerState struct {
	mu         sync.Mutex
	subs       map[string]*hubSession
	claims     map[string]map[string]struct{} // session → languages
	lastDemand []byte
}

// joinWorker admits a translation worker.
func (s *Server) joinWorker(ctx context.Context, c *conn, q query) error {
	if s.WorkerVerifier == nil {
		return pentecost.Errorf(pentecost.EAUTHINVALID, "Workers are not enabled on this server.")
	}
	if q.token == "" {
		return pentecost.Errorf(pentecost.EAUTHREQUIRED, "A worker credential is required.")
	}
	w, err := s.WorkerVerifier.VerifyWorker(ctx, q.token)
	if err != nil {
		return err
	}
	c.worker = w
	c.wstate = &workerState{subs: make(map[string]*hubSession), claims: make(map[string]map[string]struct{})}
	c.log = c.log.With(logWorker, w.ID)
	sessions, raw, err := s.demand(ctx)
	if err != nil {
		return err
	}
	c.wstate.lastDemand = raw
	// Workers are few and what they produce is what listeners hear:
	// operators see their comings and goings at info level.
	c.log.Info("worker connected")
	c.send(obj{"type": "workerConnected", "workerId": w.ID, "connectionId": c.id, "sessions": sessions})
	return nil
}

// demand lists live sessions (with listeners anywhere, or a speaker on this
// node) and the languages their listeners want.
func (s *Server) demand(ctx context.Context) ([]obj, []byte, error) {
	all, err := s.Presence.Sessions(ctx)
	if err != nil {
		return nil, nil, err
	}
	s.hub.mu.Lock()
	infos := make(map[string]pentecost.Session, len(s.hub.sessions))
	for id, hs := range s.hub.sessions {
		hs.mu.Lock()
		if !hs.ended {
			infos[id] = hs.info
		}
		hs.mu.Unlock()
	}
	s.hub.mu.Unlock()
	for id := range infos {
		if _, ok := all[id]; !ok {
			all[id] = pentecost.PresenceCounts{ByLanguage: map[string]int{}}
		}
	}
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]obj, 0, len(ids))
	for _, id := range ids {
		info, ok := infos[id]
		if !ok {
			sess, err := s.Sessions.FindSessionByID(ctx, id)
			if err != nil || sess.Status == pentecost.SessionEnded {
				continue
			}
			info = *sess
		}
		targets := map[string]int{}
		for l, n := range all[id].ByLanguage {
			if l != info.SourceLanguage && n > 0 {
				targets[l] = n
			}
		}
		produced, _ := s.Presence.ProducedLanguages(ctx, id)
		if produced == nil {
			produced = []string{}
		}
		out = append(out, obj{"sessionId": id, "sourceLanguage": info.SourceLanguage, "qualityTier": info.QualityTier,
			"audioFormat": info.AudioFormat, "targetLanguages": targets, "producedLanguages": produced})
	}
	raw, err := json.Marshal(out)
	return out, raw, err
}

// updateWorkers tells workers when demand changed.
func (s *Server) updateWorkers(ctx context.Context) {
	var workers []*conn
	for _, c := range s.hub.allConns() {
		if c.role == roleWorker && c.joined.Load() && !c.isClosing() {
			workers = append(workers, c)
		}
	}
	if len(workers) == 0 {
		return
	}
	sessions, raw, err := s.demand(ctx)
	if err != nil {
		s.Logger.Warn("worker demand", logError, err)
		return
	}
	for _, c := range workers {
		c.wstate.mu.Lock()
		changed := !bytes.Equal(c.wstate.lastDemand, raw)
		c.wstate.lastDemand = raw
		c.wstate.mu.Unlock()
		if changed {
			c.send(obj{"type": "sessionsUpdated", "sessions": sessions})
		}
	}
}

// handleWorker runs a worker's actions.
func (s *Server) handleWorker(ctx context.Context, c *conn, m *Message) {
	ws := c.wstate
	switch m.Action {
	case "subscribeSession":
		sess, err := s.findLive(ctx, m.SessionID)
		if err != nil {
			c.replyWorkerError(m, err)
			return
		}
		ws.mu.Lock()
		_, dup := ws.subs[sess.ID]
		ws.mu.Unlock()
		if dup {
			c.replyWorkerError(m, pentecost.Errorf(pentecost.ECONFLICT, "Already subscribed to this session."))
			return
		}
		hs, err := s.hub.acquire(ctx, sess)
		if err != nil {
			c.replyWorkerError(m, err)
			return
		}
		hs.mu.Lock()
		hs.workers[c] = struct{}{}
		hs.mu.Unlock()
		ws.mu.Lock()
		ws.subs[sess.ID] = hs
		ws.mu.Unlock()
		var since uint64
		if m.LastSequenceNumber != nil {
			since = *m.LastSequenceNumber
		}
		err = hs.subscribe(ctx, c, sess.SourceLanguage, m.LastSequenceNumber != nil, since, "", func(pos pentecost.StreamPosition) {
			c.send(obj{"type": "subscribed", "sessionId": sess.ID, "sourceLanguage": sess.SourceLanguage, "epoch": pos.Epoch, "sequenceNumber": pos.Last})
		})
		if err != nil {
			s.workerUnsubscribe(c, sess.ID)
			c.replyWorkerError(m, err)
		}
	case "unsubscribeSession":
		id, err := sessionid.Normalize(m.SessionID)
		if err != nil {
			c.replyWorkerError(m, err)
			return
		}
		if !s.workerUnsubscribe(c, id) {
			c.replyWorkerError(m, pentecost.Errorf(pentecost.ENOTFOUND, "Not subscribed to this session."))
			return
		}
		c.send(obj{"type": "unsubscribed", "sessionId": id})
	case "claimLanguage", "releaseLanguage":
		s.workerClaim(ctx, c, m)
	case "publishAudio", "publishCaption":
		s.workerPublish(ctx, c, m)
	default:
		c.replyWorkerError(m, pentecost.Errorf(pentecost.EUNKNOWNACTION, "Unknown action."))
	}
}

// workerUnsubscribe stops a worker's source audio of a session.
func (s *Server) workerUnsubscribe(c *conn, id string) bool {
	ws := c.wstate
	ws.mu.Lock()
	hs := ws.subs[id]
	delete(ws.subs, id)
	ws.mu.Unlock()
	if hs == nil {
		return false
	}
	hs.mu.Lock()
	delete(hs.workers, c)
	hs.unsubscribeLocked(c, hs.info.SourceLanguage)
	hs.mu.Unlock()
	s.hub.release(hs)
	return true
}

func (s *Server) workerClaim(ctx context.Context, c *conn, m *Message) {
	sess, err := s.findLive(ctx, m.SessionID)
	if err != nil {
		c.replyWorkerError(m, err)
		return
	}
	lang, err := pentecost.ValidateLanguage(m.TargetLanguage)
	if err != nil {
		c.replyWorkerError(m, err)
		return
	}
	if lang == sess.SourceLanguage {
		c.replyWorkerError(m, fieldError("targetLanguage", "targetLanguage must differ from the source language."))
		return
	}
	ws := c.wstate
	if len(m.PreviousConnectionID) > maxConnIDBytes {
		c.replyWorkerError(m, fieldError("previousConnectionId", "previousConnectionId is not a connection ID."))
		return
	}
	// Claims and releases of this node run one at a time, so that an
	// exclusive claim's check and the translationAvailable event see no
	// other claim in between. Across nodes, the presence's
	// ClaimLanguageExclusive is atomic by itself.
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if m.Action == "releaseLanguage" {
		s.workerRelease(ctx, c, sess.ID, lang)
		c.send(obj{"type": "languageReleased", "sessionId": sess.ID, "targetLanguage": lang})
		return
	}
	before, err := s.Presence.ProducedLanguages(ctx, sess.ID)
	if err != nil {
		c.replyWorkerError(m, err)
		return
	}
	if m.Exclusive {
		err = s.Presence.ClaimLanguageExclusive(ctx, sess.ID, lang, c.id, m.PreviousConnectionID)
	} else {
		_, err = s.Presence.ClaimLanguage(ctx, sess.ID, lang, c.id)
	}
	if err != nil {
		c.replyWorkerError(m, err)
		return
	}
	ws.mu.Lock()
	if ws.claims[sess.ID] == nil {
		ws.claims[sess.ID] = make(map[string]struct{})
	}
	ws.claims[sess.ID][lang] = struct{}{}
	ws.mu.Unlock()
	c.log.Info("language claimed", logSession, sess.ID, logLang, lang)
	c.send(obj{"type": "languageClaimed", "sessionId": sess.ID, "targetLanguage": lang, "exclusive": m.Exclusive})
	if !contains(before, lang) {
		s.publishEvent(ctx, sess.ID, &pentecost.SessionEvent{Type: pentecost.EventTranslationAvailable, Language: lang})
	}
}

func (s *Server) workerRelease(ctx context.Context, c *conn, id, lang string) {
	ws := c.wstate
	ws.mu.Lock()
	delete(ws.claims[id], lang)
	if len(ws.claims[id]) == 0 {
		delete(ws.claims, id)
	}
	ws.mu.Unlock()
	produced, err := s.Presence.ReleaseLanguage(ctx, id, lang, c.id)
	if err != nil {
		// The claim's presence entry expires by itself (PresenceTTL).
		c.log.Warn("release language", logSession, id, logLang, lang, logError, err)
		return
	}
	c.log.Info("language released", logSession, id, logLang, lang)
	if !produced {
		s.publishEvent(ctx, id, &pentecost.SessionEvent{Type: pentecost.EventTranslationUnavailable, Language: lang})
	}
}

func (s *Server) workerPublish(ctx context.Context, c *conn, m *Message) {
	lang, err := pentecost.ValidateLanguage(m.TargetLanguage)
	if err != nil {
		c.replyWorkerError(m, err)
		return
	}
	// Claims and subscriptions are kept under the canonical ID (findLive).
	id, err := sessionid.Normalize(m.SessionID)
	if err != nil {
		c.replyWorkerError(m, err)
		return
	}
	ws := c.wstate
	ws.mu.Lock()
	_, claimed := ws.claims[id][lang]
	hs := ws.subs[id]
	ws.mu.Unlock()
	f := &pentecost.Frame{Language: lang, Time: s.Now()}
	if m.Action == "publishAudio" {
		if !claimed {
			c.replyWorkerError(m, pentecost.Errorf(pentecost.EACTIONNOTALLOWED, "Claim the language before publishing to it."))
			return
		}
		data, err := base64.StdEncoding.DecodeString(m.AudioData)
		if err != nil {
			c.replyWorkerError(m, pentecost.Errorf(pentecost.EINVALIDAUDIO, "audioData is not valid base64."))
			return
		}
		if len(data) < pentecost.MinAudioChunk || len(data) > pentecost.MaxAudioChunk {
			c.replyWorkerError(m, pentecost.Errorf(pentecost.EINVALIDAUDIO, "Audio chunks must be between %d bytes and %d KB.", pentecost.MinAudioChunk, pentecost.MaxAudioChunk>>10))
			return
		}
		f.Kind, f.Data = pentecost.FrameAudio, data
	} else {
		source := false
		if hs != nil {
			hs.mu.Lock()
			source = hs.info.SourceLanguage == lang
			hs.mu.Unlock()
		}
		if !claimed && !source {
			c.replyWorkerError(m, pentecost.Errorf(pentecost.EACTIONNOTALLOWED, "Claim the language (or subscribe, for source captions) before publishing to it."))
			return
		}
		if len(m.Text) > MaxCaptionBytes {
			c.replyWorkerError(m, fieldError("text", "Caption text is limited to 4 KB."))
			return
		}
		f.Kind, f.Text, f.Final = pentecost.FrameCaption, m.Text, m.Final
	}
	s.metrics.framesIn.Inc()
	if err := s.Broker.Publish(ctx, pentecost.StreamKey{SessionID: id, Language: lang}, f); err != nil {
		c.replyWorkerError(m, err)
	}
}

// leaveWorker releases a worker's claims and subscriptions.
func (s *Server) leaveWorker(c *conn) {
	ws := c.wstate
	if ws == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws.mu.Lock()
	type claim struct{ id, lang string }
	var claims []claim
	for id, langs := range ws.claims {
		for l := range langs {
			claims = append(claims, claim{id, l})
		}
	}
	ids := make([]string, 0, len(ws.subs))
	for id := range ws.subs {
		ids = append(ids, id)
	}
	ws.mu.Unlock()
	s.claimMu.Lock()
	for _, cl := range claims {
		s.workerRelease(ctx, c, cl.id, cl.lang)
	}
	s.claimMu.Unlock()
	for _, id := range ids {
		s.workerUnsubscribe(c, id)
	}
	c.log.Info("worker disconnected", "claimsReleased", len(claims))
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
