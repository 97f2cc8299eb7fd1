package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pentecost/pentecost/sessionid"
)

// Live, as Subscribe's lastSeq, starts a subscription with live audio
// instead of replaying the server's history.
const Live = ^uint64(0)

// WorkerSession is a live session as a worker sees it.
type WorkerSession struct {
	SessionID      string `json:"sessionId"`
	SourceLanguage string `json:"sourceLanguage"`
	QualityTier    string `json:"qualityTier"`
	// AudioFormat is the session's audio, e.g. "pcm_s16le_16000_mono".
	AudioFormat string `json:"audioFormat"`
	// TargetLanguages are the languages other than the source that have
	// listeners now, with their counts.
	TargetLanguages map[string]int `json:"targetLanguages"`
	// ProducedLanguages are those some worker has claimed.
	ProducedLanguages []string `json:"producedLanguages"`
	// PCMLanguages counts, of each target language's listeners, those who
	// take PCM (clients that did not ask for Opus). A worker that
	// publishes Opus (PublishOpusAt) need publish PCM only while its
	// language's count is above zero. Nil from a server that knows no
	// Opus: publish PCM only.
	PCMLanguages map[string]int `json:"pcmLanguages"`
}

// TakesOpus reports whether the server that sent s takes Opus from
// workers (PublishOpusAt): it says how many listeners take PCM.
func (s WorkerSession) TakesOpus() bool { return s.PCMLanguages != nil }

// Worker is a translation worker's connection: it learns which sessions
// are live and which languages their listeners want, receives a session's
// source audio in order (Subscribe), claims languages and publishes audio
// and captions in them. Create it with NewWorker, then Open it.
//
// After a lost connection or a refresh the Worker subscribes again from the
// last sequence number it delivered and claims its languages again, before
// the old connection (if any) is closed: OnAudio gets every source chunk
// once, and listeners never hear that the translation went away.
//
// Source audio arrives as JSON (audioData with its session id): binary
// frames carry no session id, so a worker of several sessions could not
// tell them apart.
type Worker struct {
	Options

	// URL is the server's address: http(s)://host or ws(s)://host/ws.
	URL string
	// Secret is the worker credential configured on the server; it is sent
	// in the Authorization header.
	Secret string

	// OnSessions receives the list of live sessions on connecting and
	// whenever it changes.
	OnSessions func([]WorkerSession)
	// OnAudio receives the source audio of subscribed sessions; f.Data is
	// valid only during the call.
	OnAudio func(f Frame)
	// OnEvent receives sessionEnded (for subscribed sessions, which the
	// Worker then forgets) and streamGap.
	OnEvent func(Event)
	// OnError receives reply errors not answering a waiting request and
	// connection losses the Worker recovers from.
	OnError func(error)
	// OnClaimLost is told when an exclusive claim could not be restored on
	// a new connection because another worker took the language meanwhile
	// (err is a CONFLICT *Error): stop publishing to it. It runs on the
	// Worker's reconnecting goroutine, like the other callbacks one at a
	// time, and must not call methods that wait for a reply.
	OnClaimLost func(sessionID, lang string, err error)

	b base

	mu     sync.Mutex
	subs   map[string]*workerSub // guarded by mu; positions by b.cbMu
	claims map[claimKey]bool     // guarded by mu; true: exclusive
	offer  map[string][]string   // guarded by mu; sent again on every new connection
	tiers  []string              // guarded by mu; sent with the offer (OfferTiers)
	// connID is the server's ID of the installed connection, which the
	// next one names when it restores exclusive claims.
	connID string // guarded by mu

	// Requests and prepare take turns, so that a request's change of subs
	// or claims is either in prepare's copy (and made on the old
	// connection) or made on the new connection after the switch.
	active    int           // requests under way; guarded by mu
	preparing bool          // a prepare runs; requests wait; guarded by mu
	next      *conn         // the last connection prepared; guarded by mu
	turn      chan struct{} // closed when active, preparing or next change; guarded by mu

	pubMu sync.Mutex
	buf   []byte
}

type workerSub struct {
	source  string
	epoch   string
	last    uint64
	started bool // last is a real position
}

type claimKey struct{ session, lang string }

// NewWorker returns a Worker for the server at serverURL.
func NewWorker(serverURL, secret string) *Worker {
	return &Worker{URL: serverURL, Secret: secret}
}

// Open connects and returns once the server accepted the worker (or its
// reason for refusing, e.g. AUTH_INVALID_TOKEN).
func (w *Worker) Open(ctx context.Context) error {
	if err := w.b.init(&w.Options, w); err != nil {
		return err
	}
	w.subs = make(map[string]*workerSub)
	w.claims = make(map[claimKey]bool)
	w.turn = make(chan struct{})
	w.b.onError = w.OnError
	return w.b.open(ctx, "worker")
}

// Close disconnects; the server releases the Worker's claims.
func (w *Worker) Close() error { return w.b.close() }

// Done is closed when the Worker stopped.
func (w *Worker) Done() <-chan struct{} { return w.b.done }

// Err returns why the Worker stopped, once Done is closed.
func (w *Worker) Err() error { return w.b.errValue() }

// Subscribe asks for a session's source audio after lastSeq (Live: from
// now on; 0: everything the server still holds) and waits for the server's
// confirmation. Like the other methods that wait for a reply (Unsubscribe,
// Claim, Release), it must not be called from a callback. Session IDs may
// be given as typed ("Golden Eagle 427"); Frames and events carry the
// canonical form.
func (w *Worker) Subscribe(ctx context.Context, sessionID string, lastSeq uint64) error {
	id, err := canonicalID(sessionID)
	if err != nil {
		return err
	}
	sub := &workerSub{}
	if lastSeq != Live {
		sub.last, sub.started = lastSeq, true
	}
	add := func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, dup := w.subs[id]; dup {
			return &Error{Code: "CONFLICT", Message: "Already subscribed to this session.", HTTPStatus: 409, SessionID: id}
		}
		w.subs[id] = sub
		return nil
	}
	undo := func(err error) {
		var e *Error
		if errors.As(err, &e) || errors.Is(err, ErrClosed) || ctx.Err() != nil {
			w.mu.Lock()
			if w.subs[id] == sub {
				delete(w.subs, id)
			}
			w.mu.Unlock()
		}
	}
	return w.request(ctx, reqKey{"subscribeSession", id, ""}, add, func() []byte { return w.subscribeMsg(id, sub) },
		func(m *wireMsg) bool { return m.Type == "subscribed" && m.SessionID == id }, undo)
}

// subscribeMsg builds a subscribeSession from a subscription's position.
func (w *Worker) subscribeMsg(id string, sub *workerSub) []byte {
	w.b.cbMu.Lock()
	started, last := sub.started, sub.last
	w.b.cbMu.Unlock()
	m := map[string]any{"action": "subscribeSession", "sessionId": id}
	if started {
		m["lastSequenceNumber"] = last
	}
	p, _ := json.Marshal(m)
	return p
}

// Unsubscribe stops a session's source audio.
func (w *Worker) Unsubscribe(ctx context.Context, sessionID string) error {
	id, err := canonicalID(sessionID)
	if err != nil {
		return err
	}
	remove := func() error {
		w.mu.Lock()
		delete(w.subs, id)
		w.mu.Unlock()
		return nil
	}
	p, _ := json.Marshal(map[string]any{"action": "unsubscribeSession", "sessionId": id})
	return w.request(ctx, reqKey{"unsubscribeSession", id, ""}, remove, func() []byte { return p },
		func(m *wireMsg) bool { return m.Type == "unsubscribed" && m.SessionID == id }, nil)
}

// Claim declares that this worker produces lang for a session, and waits for
// the confirmation: the language's listeners then get translationAvailable.
// A claim is needed before publishing to a language. Other workers may
// claim the language too; see ClaimExclusive.
func (w *Worker) Claim(ctx context.Context, sessionID, lang string) error {
	return w.claim(ctx, sessionID, lang, false)
}

// ClaimExclusive is Claim unless another worker produces the language
// already: then it fails with an *Error whose Code is "CONFLICT" (the
// check and the claim are atomic on the server), and the worker should
// stand by until the language is no longer produced. Like Claim it returns
// nil when the connection was lost before the answer: the claim is then
// made on the next connection, naming the previous one (whose claim the
// server may still hold), and if another worker took the language
// meanwhile, OnClaimLost is told.
func (w *Worker) ClaimExclusive(ctx context.Context, sessionID, lang string) error {
	return w.claim(ctx, sessionID, lang, true)
}

func (w *Worker) claim(ctx context.Context, sessionID, lang string, exclusive bool) error {
	id, err := canonicalID(sessionID)
	if err != nil {
		return err
	}
	lang = canonicalLang(lang)
	k := claimKey{id, lang}
	add := func() error {
		w.mu.Lock()
		w.claims[k] = exclusive
		w.mu.Unlock()
		return nil
	}
	undo := func(err error) {
		var e *Error
		if errors.As(err, &e) {
			w.mu.Lock()
			delete(w.claims, k)
			w.mu.Unlock()
		}
	}
	return w.request(ctx, reqKey{"claimLanguage", id, lang}, add, func() []byte { return claimMsg(id, lang, exclusive, "") },
		func(m *wireMsg) bool {
			return m.Type == "languageClaimed" && m.SessionID == id && m.TargetLanguage == lang
		}, undo)
}

// Release gives up a claim; when no worker produces the language any more,
// its listeners get translationUnavailable.
func (w *Worker) Release(ctx context.Context, sessionID, lang string) error {
	id, err := canonicalID(sessionID)
	if err != nil {
		return err
	}
	lang = canonicalLang(lang)
	remove := func() error {
		w.mu.Lock()
		delete(w.claims, claimKey{id, lang})
		w.mu.Unlock()
		return nil
	}
	p, _ := json.Marshal(map[string]string{"action": "releaseLanguage", "sessionId": id, "targetLanguage": lang})
	return w.request(ctx, reqKey{"releaseLanguage", id, lang}, remove, func() []byte { return p },
		func(m *wireMsg) bool {
			return m.Type == "languageReleased" && m.SessionID == id && m.TargetLanguage == lang
		}, nil)
}

// canonicalID is the session ID as the server names it in its replies.
func canonicalID(typed string) (string, error) {
	id, err := sessionid.Normalize(typed)
	if err != nil {
		return "", &Error{Code: "INVALID_SESSION_ID", Message: "Session ID must look like golden-eagle-427.", HTTPStatus: 400, SessionID: typed}
	}
	return id, nil
}

// canonicalLang is a language code as the server names it in its replies.
func canonicalLang(lang string) string { return strings.ToLower(strings.TrimSpace(lang)) }

// claimMsg builds a claimLanguage; previous is the connection an exclusive
// claim takes over from ("" for none).
func claimMsg(id, lang string, exclusive bool, previous string) []byte {
	m := map[string]any{"action": "claimLanguage", "sessionId": id, "targetLanguage": lang}
	if exclusive {
		m["exclusive"] = true
		if previous != "" {
			m["previousConnectionId"] = previous
		}
	}
	p, _ := json.Marshal(m)
	return p
}

// PublishAudio publishes a chunk of audio in a claimed language. The server
// confirms nothing; a refusal reaches OnError. Its listeners' timestamp is
// when the server received it; PublishAudioAt tells the source speech's.
func (w *Worker) PublishAudio(ctx context.Context, sessionID, lang string, pcm []byte) error {
	return w.PublishAudioAt(ctx, sessionID, lang, pcm, time.Time{})
}

// PublishAudioAt is PublishAudio with the capture time of the source speech
// the audio translates (sourceTimestamp): listeners get it as the chunk's
// timestamp, and so see the delay from the speaker's voice. A zero source
// time sends none. The server falls back to its receive time for a time
// more than a few seconds ahead of its clock or older than 10 minutes.
func (w *Worker) PublishAudioAt(ctx context.Context, sessionID, lang string, pcm []byte, source time.Time) error {
	if len(pcm) < MinAudioChunk || len(pcm) > MaxAudioChunk {
		return &Error{Code: "INVALID_AUDIO_CHUNK", Message: "Audio chunks must be between 100 bytes and 32 KB.", HTTPStatus: 400, SessionID: sessionID}
	}
	return w.publishAudio(ctx, sessionID, lang, "", pcm, source)
}

// PublishOpusAt publishes one Opus packet (mono, 2.5 to 120 ms; 100 ms
// recommended) in a claimed language, with the capture time of the source
// speech it translates as PublishAudioAt has it: publishAudio with codec
// opus, which the server publishes to the language's listeners of Opus.
// Listeners of PCM get only what PublishAudioAt publishes: a worker that
// publishes Opus publishes PCM too while WorkerSession.PCMLanguages counts
// any. Until a worker connection has published Opus to a language, the
// server also gives its PCM to the language's listeners of Opus. Check
// WorkerSession.TakesOpus first: a server that knows no Opus would take
// the packet for PCM.
func (w *Worker) PublishOpusAt(ctx context.Context, sessionID, lang string, packet []byte, source time.Time) error {
	if len(packet) < MinOpusPacket || len(packet) > MaxAudioChunk {
		return &Error{Code: "INVALID_AUDIO_CHUNK", Message: "Opus packets must be between 1 byte and 32 KB.", HTTPStatus: 400, SessionID: sessionID}
	}
	return w.publishAudio(ctx, sessionID, lang, CodecOpus, packet, source)
}

// publishAudio writes a publishAudio message; codec "" is PCM, sent
// without a codec field as before there were codecs.
func (w *Worker) publishAudio(ctx context.Context, sessionID, lang, codec string, audio []byte, source time.Time) error {
	w.pubMu.Lock()
	defer w.pubMu.Unlock()
	w.buf = appendAudioAction(w.buf[:0], "publishAudio", sessionID, lang, audio, 0)
	// appendAudioAction ends with the object's closing brace.
	if codec != "" {
		w.buf = append(w.buf[:len(w.buf)-1], `,"codec":`...)
		w.buf = appendJSONString(w.buf, codec)
		w.buf = append(w.buf, '}')
	}
	if !source.IsZero() {
		w.buf = append(w.buf[:len(w.buf)-1], `,"sourceTimestamp":`...)
		w.buf = strconv.AppendInt(w.buf, source.UnixMilli(), 10)
		w.buf = append(w.buf, '}')
	}
	return w.b.write(ctx, websocket.MessageText, w.buf)
}

// OfferLanguages tells the server which languages this worker can produce,
// target languages by source language (e.g. {"en": {"es", "ca"}}), and
// waits for its confirmation. Listeners' pages then list those languages
// as available for sessions in that source language; production starts
// when a listener picks one. The offer replaces the previous one, is sent
// again on every new connection, and is dropped by the server when the
// worker disconnects. Like Claim, it must not be called from a callback,
// and a connection lost before the answer is no error.
func (w *Worker) OfferLanguages(ctx context.Context, offer map[string][]string) error {
	cp := make(map[string][]string, len(offer))
	for src, targets := range offer {
		cp[src] = append([]string(nil), targets...)
	}
	var prev map[string][]string
	set := func() error {
		w.mu.Lock()
		prev, w.offer = w.offer, cp
		w.mu.Unlock()
		return nil
	}
	// A refused offer leaves the server with the previous one.
	undo := func(err error) {
		var e *Error
		if errors.As(err, &e) {
			w.mu.Lock()
			w.offer = prev
			w.mu.Unlock()
		}
	}
	w.mu.Lock()
	tiers := w.tiers
	w.mu.Unlock()
	return w.request(ctx, reqKey{"offerLanguages", "", ""}, set, func() []byte { return offerMsg(cp, tiers) },
		func(m *wireMsg) bool { return m.Type == "languagesOffered" }, undo)
}

// OfferTiers sets the quality tiers ("standard", "premium") this worker
// serves. They go with the language offer: call it before OfferLanguages;
// they are sent with every offer after, including the one made again on
// every new connection. Without a call the server takes "standard". The
// speaker page offers only tiers some connected worker serves.
func (w *Worker) OfferTiers(tiers []string) {
	w.mu.Lock()
	w.tiers = append([]string(nil), tiers...)
	w.mu.Unlock()
}

func offerMsg(offer map[string][]string, tiers []string) []byte {
	m := map[string]any{"action": "offerLanguages", "languages": offer}
	if len(tiers) > 0 {
		m["tiers"] = tiers
	}
	p, _ := json.Marshal(m)
	return p
}

// LanguageStatus is how the worker fares producing a language, for the
// speaker's page (ReportLanguageStatus). It never carries engine text.
type LanguageStatus struct {
	// Stage is the failing stage: "recognize", "translate", "synthesize",
	// or "" when all is well.
	Stage string
	// ErrorCode is why it fails: "timeout", "throttled", "unavailable",
	// "refused", "bad_response", "unsupported", "internal", or "".
	ErrorCode string
	// LatencyMs is the recent delay from source speech to published output.
	LatencyMs int
}

// reportTimeout bounds how long ReportLanguageStatus waits for a
// connection: a status is soon stale, and the pipeline must not stall.
const reportTimeout = 2 * time.Second

// ReportLanguageStatus tells the session's speaker how a language this
// worker claimed is being produced: recent latency, or the stage and error
// code that fail. The server checks it (a language not claimed, an unknown
// stage or code come back as reply errors through OnError) and limits
// reports to about 20 a second per connection: report after each utterance
// and on every failure, not per audio frame. It returns once the report is
// written, or an error when no connection took it within 2 s.
func (w *Worker) ReportLanguageStatus(sessionID, lang string, st LanguageStatus) error {
	p, err := json.Marshal(map[string]any{"action": "reportLanguageStatus", "sessionId": sessionID, "targetLanguage": lang,
		"stage": st.Stage, "errorCode": st.ErrorCode, "latencyMs": max(st.LatencyMs, 0)})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	w.pubMu.Lock()
	defer w.pubMu.Unlock()
	return w.b.write(ctx, websocket.MessageText, p)
}

// PublishCaption publishes a caption in a claimed language, or a transcript
// in the session's source language. final is false for a provisional line.
func (w *Worker) PublishCaption(ctx context.Context, sessionID, lang, text string, final bool) error {
	p, err := json.Marshal(map[string]any{"action": "publishCaption", "sessionId": sessionID,
		"targetLanguage": lang, "text": text, "final": final})
	if err != nil {
		return err
	}
	w.pubMu.Lock()
	defer w.pubMu.Unlock()
	return w.b.write(ctx, websocket.MessageText, p)
}

// request makes a change on the current connection and waits for the
// server's reply: change records it in subs or claims (or refuses it), msg
// builds the request, undo (if set) reverts the change when the request
// failed. A connection lost meanwhile is not an error: the Worker
// subscribes and claims again on the next one.
func (w *Worker) request(ctx context.Context, k reqKey, change func() error, msg func() []byte,
	match func(*wireMsg) bool, undo func(error)) error {
	c, err := w.enter(ctx)
	if err != nil {
		return err
	}
	defer w.leave()
	if err := change(); err != nil {
		return err
	}
	err = c.request(ctx, k, msg(), match)
	var ce *CloseError
	if errors.As(err, &ce) || (err != nil && ctx.Err() == nil && c.isDone()) {
		return nil // restored by prepare on the next connection
	}
	if err != nil && undo != nil {
		undo(err)
	}
	return err
}

// enter waits for the connection a request may use: the current one, once
// no prepare runs and no prepared connection is about to replace it (its
// prepare did not see the request's change). The caller must call leave.
func (w *Worker) enter(ctx context.Context) (*conn, error) {
	for {
		w.b.mu.Lock()
		c, changed, stopped := w.b.cur, w.b.changed, w.b.stopped
		w.b.mu.Unlock()
		if stopped {
			return nil, ErrClosed
		}
		w.mu.Lock()
		next, turn := w.next, w.turn
		ok := !w.preparing && c != nil && !c.isDone() && (next == nil || next == c || next.isDone())
		if ok {
			w.active++
		}
		w.mu.Unlock()
		if ok {
			return c, nil
		}
		var nextDone <-chan struct{}
		if next != nil {
			nextDone = next.done
		}
		w.b.hookAt("wait")
		select {
		case <-changed:
		case <-turn:
		case <-nextDone:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (w *Worker) leave() {
	w.mu.Lock()
	w.active--
	if w.active == 0 {
		w.nextTurnLocked()
	}
	w.mu.Unlock()
}

func (w *Worker) nextTurnLocked() {
	close(w.turn)
	w.turn = make(chan struct{})
}

// waitTurnLocked waits, with w.mu held on entry and return, until turn
// changes or ctx ends.
func (w *Worker) waitTurnLocked(ctx context.Context) error {
	turn := w.turn
	w.mu.Unlock()
	defer w.mu.Lock()
	select {
	case <-turn:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prepare implements role: subscribe and claim again on a new connection.
// Requests wait meanwhile, and then go to c once it is current.
func (w *Worker) prepare(ctx context.Context, c *conn) (err error) {
	w.mu.Lock()
	for w.preparing {
		if err := w.waitTurnLocked(ctx); err != nil {
			w.mu.Unlock()
			return err
		}
	}
	w.preparing = true
	defer func() {
		w.mu.Lock()
		w.preparing = false
		if err == nil {
			w.next = c
		}
		w.nextTurnLocked()
		w.mu.Unlock()
	}()
	for w.active > 0 {
		if err := w.waitTurnLocked(ctx); err != nil {
			w.mu.Unlock()
			return err
		}
	}
	ids := make([]string, 0, len(w.subs))
	subs := make([]*workerSub, 0, len(w.subs))
	for id := range w.subs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		subs = append(subs, w.subs[id])
	}
	claims := make([]claimKey, 0, len(w.claims))
	for k := range w.claims {
		claims = append(claims, k)
	}
	// The connection being replaced may still hold the claims (a refresh,
	// or a loss the server has not noticed yet): exclusive claims name it.
	previous := w.connID
	offer, tiers := w.offer, w.tiers
	w.mu.Unlock()
	w.b.hookAt("prepare")
	if offer != nil {
		err := c.request(ctx, reqKey{"offerLanguages", "", ""}, offerMsg(offer, tiers), func(m *wireMsg) bool { return m.Type == "languagesOffered" })
		var e *Error
		if err != nil && !errors.As(err, &e) {
			return err // the connection failed; a refusal is the offer's own fault and is not retried
		}
	}
	for i, id := range ids {
		err := c.request(ctx, reqKey{"subscribeSession", id, ""}, w.subscribeMsg(id, subs[i]), func(m *wireMsg) bool {
			return m.Type == "subscribed" && m.SessionID == id
		})
		if err != nil && !w.gone(err, id, "") {
			return err
		}
	}
	for _, k := range claims {
		w.mu.Lock()
		exclusive, ok := w.claims[k]
		w.mu.Unlock()
		if !ok {
			continue // the session ended meanwhile
		}
		err := c.request(ctx, reqKey{"claimLanguage", k.session, k.lang}, claimMsg(k.session, k.lang, exclusive, previous), func(m *wireMsg) bool {
			return m.Type == "languageClaimed" && m.SessionID == k.session && m.TargetLanguage == k.lang
		})
		if err != nil && !w.gone(err, k.session, k.lang) && !w.lost(err, k) {
			return err
		}
	}
	return nil
}

// lost handles an exclusive claim that another worker took while this one
// was away: it is forgotten and OnClaimLost told. It reports whether err
// was that.
func (w *Worker) lost(err error, k claimKey) bool {
	var e *Error
	if !errors.As(err, &e) || e.Code != "CONFLICT" {
		return false
	}
	w.mu.Lock()
	delete(w.claims, k)
	w.mu.Unlock()
	if w.OnClaimLost != nil {
		// Like every callback, never concurrently with another.
		w.b.cbMu.Lock()
		w.OnClaimLost(k.session, k.lang, err)
		w.b.cbMu.Unlock()
	}
	return true
}

// gone handles a session that ended while the worker was away: it is
// forgotten. It reports whether err was that.
func (w *Worker) gone(err error, id, lang string) bool {
	var e *Error
	if !errors.As(err, &e) || (e.Code != "SESSION_NOT_FOUND" && e.Code != "SESSION_ENDED") {
		return false
	}
	w.mu.Lock()
	if lang == "" {
		delete(w.subs, id)
	} else {
		delete(w.claims, claimKey{id, lang})
	}
	w.mu.Unlock()
	return true
}

// installed implements role.
func (w *Worker) installed(c *conn, _ bool) {
	w.mu.Lock()
	w.connID = c.serverID
	w.mu.Unlock()
}

// dialURL implements role.
func (w *Worker) dialURL(dialKind, string) (string, error) {
	return wsURL(w.URL, url.Values{"role": {"worker"}})
}

// header implements role.
func (w *Worker) header(h http.Header) {
	if w.Secret != "" {
		h.Set("Authorization", "Bearer "+w.Secret)
	}
}

func (w *Worker) sub(id string) *workerSub {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.subs[id]
}

// handle implements role; it runs under b.cbMu.
func (w *Worker) handle(c *conn, m *wireMsg) {
	switch m.Type {
	case "workerConnected", "sessionsUpdated":
		if m.Type == "workerConnected" {
			c.serverID = m.ConnectionID
		}
		if w.OnSessions != nil {
			w.OnSessions(m.Sessions)
		}
	case "subscribed":
		sub := w.sub(m.SessionID)
		if sub == nil {
			return
		}
		sub.source = m.SourceLanguage
		switch {
		case !sub.started:
			sub.started, sub.epoch, sub.last = true, m.Epoch, m.SequenceNumber
		case sub.epoch == "":
			sub.epoch = m.Epoch
		case sub.epoch != m.Epoch:
			// The stream restarted: the old numbers do not apply.
			sub.epoch, sub.last = m.Epoch, 0
		}
	case "audioData":
		sub := w.sub(m.SessionID)
		if sub == nil || m.SequenceNumber <= sub.last {
			return
		}
		sub.last = m.SequenceNumber
		if w.OnAudio != nil {
			w.OnAudio(Frame{SessionID: m.SessionID, Language: m.Language, Seq: m.SequenceNumber,
				Timestamp: msTime(m.Timestamp), Codec: m.codec(), Data: m.AudioData})
		}
	case EventStreamGap:
		if sub := w.sub(m.SessionID); sub != nil && m.FirstSequenceNumber > 0 {
			sub.epoch, sub.last = m.Epoch, m.FirstSequenceNumber-1
		}
		w.event(m.event())
	case EventSessionEnded:
		w.mu.Lock()
		_, had := w.subs[m.SessionID]
		delete(w.subs, m.SessionID)
		for k := range w.claims {
			if k.session == m.SessionID {
				delete(w.claims, k)
			}
		}
		w.mu.Unlock()
		if had {
			w.event(m.event())
		}
	case "unsubscribed", "languageClaimed", "languageReleased", "languagesOffered":
	default:
		w.event(m.event())
	}
}

func (w *Worker) handleBinary(*conn, []byte) {}

func (w *Worker) event(e Event) {
	if w.OnEvent != nil {
		w.OnEvent(e)
	}
}
