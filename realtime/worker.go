package realtime

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"math"
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
	offer      pentecost.LanguageOffer        // what it can produce (offerLanguages)
	lastDemand []byte
	reports    reportState // reportLanguageStatus limits
	// opusSent holds the languages ("session/language") this connection
	// has published Opus of: until it does, its PCM goes to the Opus
	// stream too, so that listeners who take Opus hear a worker without
	// an encoder.
	opusSent map[string]bool
	// pub is what it publishes on its way to the broker (publish.go).
	pub *publishQueue
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
	c.wstate = &workerState{subs: make(map[string]*hubSession), claims: make(map[string]map[string]struct{}),
		pub: newPublishQueue(s, nil, workerPublishQueue)}
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
		targets, pcm := map[string]int{}, map[string]int{}
		for l, n := range all[id].ByLanguage {
			if l != info.SourceLanguage && n > 0 {
				targets[l] = n
				if p := all[id].PCMByLanguage[l]; p > 0 {
					pcm[l] = p
				}
			}
		}
		produced, _ := s.Presence.ProducedLanguages(ctx, id)
		if produced == nil {
			produced = []string{}
		}
		out = append(out, obj{"sessionId": id, "sourceLanguage": info.SourceLanguage, "qualityTier": info.QualityTier,
			"audioFormat": info.AudioFormat, "targetLanguages": targets, "pcmLanguages": pcm, "producedLanguages": produced})
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
		err = hs.subscribe(ctx, c, hs.key(sess.SourceLanguage, pentecost.CodecPCM), m.LastSequenceNumber != nil, since, "", func(pos pentecost.StreamPosition) {
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
		s.workerPublish(c, m)
	case "offerLanguages":
		s.workerOffer(ctx, c, m)
	case "reportLanguageStatus":
		s.workerReport(ctx, c, m)
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
	hs.unsubscribeLocked(c, hs.key(hs.info.SourceLanguage, pentecost.CodecPCM))
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

// workerPublish queues a worker's audio or caption for its stream
// (publish.go): stamped when read, like a speaker's.
func (s *Server) workerPublish(c *conn, m *Message) {
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
	now := s.Now()
	f := &pentecost.Frame{Language: lang, Time: now}
	codec := pentecost.CodecPCM
	if m.Action == "publishAudio" {
		f.SourceTime = sourceTime(m.SourceTimestamp, now)
		if !claimed {
			c.replyWorkerError(m, pentecost.Errorf(pentecost.EACTIONNOTALLOWED, "Claim the language before publishing to it."))
			return
		}
		data, err := base64.StdEncoding.DecodeString(m.AudioData)
		if err != nil {
			c.replyWorkerError(m, pentecost.Errorf(pentecost.EINVALIDAUDIO, "audioData is not valid base64."))
			return
		}
		switch m.Codec {
		case "", "pcm":
		case "opus":
			codec = pentecost.CodecOpus
		default:
			c.replyWorkerError(m, fieldError("codec", "codec must be pcm or opus."))
			return
		}
		if err := checkChunk(data, codec); err != nil {
			c.replyWorkerError(m, err)
			return
		}
		f.Kind, f.Data, f.Codec = pentecost.FrameAudio, data, codec
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
	push := func(f *pentecost.Frame, codec string) {
		ws.pub.push(pubItem{key: pentecost.StreamKey{SessionID: id, Language: lang, Codec: codec}, f: f, c: c,
			reqSession: m.SessionID, reqLang: m.TargetLanguage})
	}
	opusKey := id + "/" + lang
	switch {
	case f.Kind == pentecost.FrameAudio && codec == pentecost.CodecOpus:
		ws.mu.Lock()
		if ws.opusSent == nil {
			ws.opusSent = make(map[string]bool)
		}
		ws.opusSent[opusKey] = true
		ws.mu.Unlock()
		push(f, pentecost.CodecOpus)
	case f.Kind == pentecost.FrameAudio:
		ws.mu.Lock()
		opus := ws.opusSent[opusKey]
		ws.mu.Unlock()
		dup := *f // copied before the broker numbers f
		push(f, pentecost.CodecPCM)
		if !opus {
			push(&dup, pentecost.CodecOpus)
		}
	default:
		// Captions go to both streams, each ordering them with its audio.
		dup := *f // copied before the broker numbers f
		push(f, pentecost.CodecPCM)
		push(&dup, pentecost.CodecOpus)
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
	ws.mu.Lock()
	offered := len(ws.offer) > 0
	ws.offer = nil
	ws.mu.Unlock()
	if offered {
		if err := s.Presence.OfferLanguages(ctx, c.id, nil); err != nil {
			// The offer expires by itself (PresenceTTL).
			c.log.Warn("withdraw language offer", logError, err)
		}
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

// Bounds of an offerLanguages offer: far above what a worker's engines
// cover (the offline engines offer 3 pairs, a cloud worker a few hundred),
// low enough that one message cannot make the presence hold thousands.
const (
	maxOfferSources = 64
	maxOfferPairs   = 1024
)

// Bounds of a publishAudio sourceTimestamp: a worker's clock a little
// ahead of the server's is tolerated; a time further ahead, or older than
// any translation of live speech can be, is not a capture time.
const (
	maxSourceAhead = 5 * time.Second
	maxSourceAge   = 10 * time.Minute
)

// sourceTime reads publishAudio's sourceTimestamp (Unix ms). Anything
// missing, not a number or absurd (more than maxSourceAhead in the future,
// older than maxSourceAge) gives a zero time: the frame's timestamp is
// then the server's receive time. It never fails the publish.
func sourceTime(raw json.RawMessage, now time.Time) time.Time {
	if len(raw) == 0 {
		return time.Time{}
	}
	var ms float64
	if err := json.Unmarshal(raw, &ms); err != nil || math.IsNaN(ms) || math.IsInf(ms, 0) {
		return time.Time{}
	}
	// Compare in milliseconds first: a huge value must not overflow time.Duration.
	nowMs := float64(now.UnixMilli())
	if ms > nowMs+float64(maxSourceAhead.Milliseconds()) || ms < nowMs-float64(maxSourceAge.Milliseconds()) {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms))
}

// workerOffer records what a worker connection can produce (offerLanguages).
// The offer replaces the connection's previous one; an empty one withdraws
// it. Errors (the connection stays): INVALID_MESSAGE (missing or not an
// object of arrays of strings), INVALID_LANGUAGE or UNSUPPORTED_LANGUAGE
// (a code, with details.language), VALIDATION_INVALID_FIELD (too large),
// SERVICE_UNAVAILABLE.
func (s *Server) workerOffer(ctx context.Context, c *conn, m *Message) {
	offer, err := parseOffer(m.Languages)
	if err != nil {
		c.replyWorkerError(m, err)
		return
	}
	tiers, err := parseTiers(m.Tiers)
	if err != nil {
		c.replyWorkerError(m, err)
		return
	}
	if len(offer) > 0 {
		offer[pentecost.OfferTiersKey] = tiers
	}
	// Under claimMu like claims, so that a cluster refresh cannot renew
	// the previous offer after this one (or after the worker left).
	s.claimMu.Lock()
	defer s.claimMu.Unlock()
	if err := s.Presence.OfferLanguages(ctx, c.id, offer); err != nil {
		c.replyWorkerError(m, err)
		return
	}
	ws := c.wstate
	ws.mu.Lock()
	ws.offer = offer
	ws.mu.Unlock()
	langs := make(pentecost.LanguageOffer, len(offer))
	for k, v := range offer {
		if k != pentecost.OfferTiersKey {
			langs[k] = v
		}
	}
	c.log.Info("languages offered", "pairs", offerPairs(langs), "tiers", tiers)
	c.send(obj{"type": "languagesOffered", "languages": langs, "tiers": tiers})
}

// parseTiers checks offerLanguages' tiers: quality tiers, standard when
// missing. Errors: INVALID_MESSAGE (not an array of strings),
// VALIDATION_INVALID_FIELD (an unknown tier).
func parseTiers(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return []string{string(pentecost.QualityStandard)}, nil
	}
	var in []string
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, pentecost.Errorf(pentecost.EINVALIDMESSAGE, "tiers must be an array of quality tiers.")
	}
	out := []string{}
	for _, t := range in {
		if !pentecost.QualityTier(t).Valid() {
			return nil, fieldError("tiers", `tiers may hold "standard" and "premium".`)
		}
		if !contains(out, t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fieldError("tiers", "tiers must name at least one tier.")
	}
	sort.Strings(out)
	return out, nil
}

// parseOffer checks an offerLanguages offer and returns it normalised:
// codes in lower case, sorted, without duplicates and without a target
// equal to its source.
func parseOffer(raw json.RawMessage) (pentecost.LanguageOffer, error) {
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, pentecost.Errorf(pentecost.EINVALIDMESSAGE, "languages is required: an object of source language to target languages.")
	}
	var in map[string][]string
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, pentecost.Errorf(pentecost.EINVALIDMESSAGE, "languages must be an object of source language to an array of target languages.")
	}
	if len(in) > maxOfferSources {
		return nil, fieldError("languages", "languages may name at most 64 source languages.")
	}
	out := make(pentecost.LanguageOffer, len(in))
	pairs := 0
	for src, targets := range in {
		from, err := pentecost.ValidateLanguage(src)
		if err != nil {
			return nil, err
		}
		for _, t := range targets {
			to, err := pentecost.ValidateLanguage(t)
			if err != nil {
				return nil, err
			}
			if to != from && !contains(out[from], to) {
				out[from] = append(out[from], to)
				pairs++
			}
		}
		if pairs > maxOfferPairs {
			return nil, fieldError("languages", "languages may offer at most 1024 pairs.")
		}
		sort.Strings(out[from])
	}
	for src, targets := range out {
		if len(targets) == 0 {
			delete(out, src)
		}
	}
	return out, nil
}

func offerPairs(o pentecost.LanguageOffer) int {
	n := 0
	for _, t := range o {
		n += len(t)
	}
	return n
}
