package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/prometheus/client_golang/prometheus"
)

// Log keys. Transcripts and translations are never logged.
const (
	logSession  = "session"
	logLanguage = "language"
	logEngine   = "engine"
	logError    = "error"
	logDuration = "duration"
	logSamples  = "samples"
)

// Worker follows a Pentecost server's live sessions and produces, for each,
// the target languages that have listeners and that its Engines cover.
//
// A language of a session is produced by one worker at a time: a Worker
// claims a language only when the server's session list shows no worker
// producing it, and claims it exclusively, so that of two workers that see
// a new language in the same instant the server lets one win; the other
// gets CONFLICT and stands by until the language is no longer produced.
//
// Create it with NewWorker, set Engines, then Open it.
type Worker struct {
	// URL is the server's address, e.g. http://localhost:8080.
	URL string
	// Credential is a worker credential the server accepts.
	Credential string
	// Engines are the recognisers, translators and synthesisers to use.
	Engines *Engines
	// Tiers are the engines of each quality tier ("standard", "premium"):
	// a session's qualityTier picks them. A tier missing here uses Engines.
	Tiers map[string]*Engines
	// Deadline bounds the whole chain of one segment, from the end of its
	// speech through recognition, translation and synthesis: a stuck
	// engine call is cut there; 0: none. Default 6 s.
	Deadline time.Duration
	// Budget is how far a language may fall behind the speaker before its
	// stale work is dropped (a segment captioned but not spoken, the rest
	// of a segment's audio); 0: never. Default 4 s.
	Budget time.Duration
	// MaxSegmentWords cuts a stable run of the transcript with no
	// punctuation after this many words; 0: only at sentence and clause
	// boundaries and finals. Default 12.
	MaxSegmentWords int
	// StatusReporter, when set, receives each language's status (see
	// LanguageStatus) on change and at most every 2 s, for the speaker.
	StatusReporter func(sessionID, lang string, st LanguageStatus) error
	// Cache holds translations of repeated phrases; default 1024 entries.
	Cache *Cache
	// VAD is the template of every session's Segmenter.
	VAD Segmenter
	// Logger receives the worker's logs; never transcripts.
	Logger *slog.Logger
	// Registerer receives the worker's metrics; nil: none.
	Registerer prometheus.Registerer
	// Now is the clock of the delay metric and of standing by.
	Now func() time.Time
	// MinBackoff is the client's first reconnection delay (0: its default).
	MinBackoff time.Duration

	client *client.Worker
	m      *metrics
	kick   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	latest   []client.WorkerSession // guarded by mu
	gen      uint64                 // counts session lists; guarded by mu
	sessions map[string]*session    // guarded by mu
	standby  map[langKey]standby    // guarded by mu
	lost     []langKey              // claims taken over while away; guarded by mu
}

// StandbyRetry is how long a Worker that lost a claim race waits before it
// tries again without a newer session list.
const StandbyRetry = 5 * time.Second

type langKey struct{ session, lang string }

// standby is a language another worker produces: it is claimed again once
// a newer session list no longer shows it produced, or after StandbyRetry.
type standby struct {
	gen uint64
	at  time.Time
}

// NewWorker returns a Worker of the server at url.
func NewWorker(url, credential string) *Worker {
	return &Worker{URL: url, Credential: credential, Cache: NewCache(1024), VAD: *NewSegmenter(),
		Deadline: 6 * time.Second, Budget: 4 * time.Second, MaxSegmentWords: 12,
		Logger: slog.New(slog.DiscardHandler), Now: time.Now}
}

// Open connects to the server and starts following its sessions.
func (w *Worker) Open(ctx context.Context) error {
	if w.Engines == nil {
		return errors.New("worker: no engines configured")
	}
	w.m = newMetrics(w.Registerer)
	w.kick = make(chan struct{}, 1)
	w.done = make(chan struct{})
	w.sessions = make(map[string]*session)
	w.standby = make(map[langKey]standby)
	c := client.NewWorker(w.URL, w.Credential)
	if w.MinBackoff > 0 {
		c.MinBackoff = w.MinBackoff
	}
	c.OnSessions = func(list []client.WorkerSession) {
		w.mu.Lock()
		w.latest = list
		w.gen++
		w.mu.Unlock()
		w.poke()
	}
	// Called while reconnecting, when another worker took a language
	// meanwhile: reconcile stops it.
	c.OnClaimLost = func(sessionID, lang string, _ error) {
		w.mu.Lock()
		w.lost = append(w.lost, langKey{sessionID, lang})
		w.mu.Unlock()
		w.poke()
	}
	c.OnAudio = func(f client.Frame) {
		w.mu.Lock()
		s := w.sessions[f.SessionID]
		w.mu.Unlock()
		// Workers get a session's PCM stream; anything else is not
		// samples to recognise.
		if s != nil && f.Codec == client.CodecPCM {
			s.push(PCM(f.Data), f.Timestamp)
		}
	}
	c.OnEvent = func(e client.Event) {
		if e.Type == client.EventSessionEnded {
			w.Logger.Info("session ended", logSession, e.SessionID)
			w.poke()
		}
	}
	c.OnError = func(err error) { w.Logger.Warn("server connection", logError, err) }
	w.client = c
	if w.StatusReporter == nil {
		w.StatusReporter = func(sessionID, lang string, st LanguageStatus) error {
			return c.ReportLanguageStatus(sessionID, lang, client.LanguageStatus(st))
		}
	}
	c.OfferTiers(w.TierNames())
	if err := c.Open(ctx); err != nil {
		return fmt.Errorf("worker: connecting to %s: %w", w.URL, err)
	}
	// What the engines can produce, so that listeners' pages offer those
	// languages before anyone listens to them. The client sends it again
	// on every new connection. A server of an earlier version refuses the
	// action (UNKNOWN_ACTION): the worker works as before.
	if offer := w.offer(); len(offer) > 0 {
		if err := c.OfferLanguages(ctx, offer); err != nil {
			w.Logger.Warn("offering languages", logError, err)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.run(runCtx)
	return nil
}

// Close stops every session and disconnects; the server then releases the
// worker's claims, and another worker can take its languages.
func (w *Worker) Close() error {
	if w.cancel == nil {
		return nil
	}
	w.cancel()
	<-w.done
	w.mu.Lock()
	sessions := w.sessions
	w.sessions = map[string]*session{}
	w.mu.Unlock()
	for _, s := range sessions {
		s.stop()
	}
	return w.client.Close()
}

// Done is closed when the connection to the server stopped for good (e.g.
// the credential was refused).
func (w *Worker) Done() <-chan struct{} { return w.client.Done() }

// Err returns why the connection stopped, once Done is closed.
func (w *Worker) Err() error { return w.client.Err() }

func (w *Worker) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run reconciles what the worker produces with what the sessions need, on
// every session list and every second (to retry what failed).
func (w *Worker) run(ctx context.Context) {
	defer close(w.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-tick.C:
		}
		w.reconcile(ctx)
	}
}

// wanted returns the languages the worker should produce for a session:
// those with listeners that its engines cover, and that no other worker
// produces.
func (w *Worker) wanted(ws client.WorkerSession, mine map[string]bool) []string {
	var out []string
	eng := w.enginesFor(ws.QualityTier)
	for lang, n := range ws.TargetLanguages {
		if n <= 0 || !eng.CanProduce(ws.SourceLanguage, lang) {
			continue
		}
		if mine[lang] || !slices.Contains(ws.ProducedLanguages, lang) {
			out = append(out, lang)
		}
	}
	slices.Sort(out)
	return out
}

func (w *Worker) reconcile(ctx context.Context) {
	w.mu.Lock()
	list, gen, lost := w.latest, w.gen, w.lost
	w.lost = nil
	w.mu.Unlock()
	for _, k := range lost {
		w.mu.Lock()
		s := w.sessions[k.session]
		w.standby[k] = standby{gen: gen, at: w.Now()}
		w.mu.Unlock()
		if s != nil && s.languages()[k.lang] {
			s.removeStream(k.lang)
			w.m.langs.Dec()
			w.Logger.Warn("language taken by another worker while disconnected", logSession, k.session, logLanguage, k.lang)
		}
	}
	live := make(map[string]bool, len(list))
	for _, ws := range list {
		live[ws.SessionID] = true
		w.mu.Lock()
		s := w.sessions[ws.SessionID]
		w.mu.Unlock()
		var mine map[string]bool
		if s != nil {
			mine = s.languages()
		}
		want := w.wanted(ws, mine)
		want = slices.DeleteFunc(want, func(lang string) bool { return !mine[lang] && w.standingBy(ws.SessionID, lang, gen) })
		if s == nil {
			if len(want) == 0 {
				continue
			}
			if err := w.client.Subscribe(ctx, ws.SessionID, client.Live); err != nil {
				if ctx.Err() == nil {
					w.Logger.Warn("subscribing", logSession, ws.SessionID, logError, err)
				}
				continue
			}
			s = newSession(w, ws.SessionID, ws.SourceLanguage, w.enginesFor(ws.QualityTier))
			w.mu.Lock()
			w.sessions[ws.SessionID] = s
			w.mu.Unlock()
			w.m.sessions.Inc()
			w.Logger.Info("session started", logSession, ws.SessionID, "source", ws.SourceLanguage)
		}
		for _, lang := range want {
			if mine[lang] {
				continue
			}
			k := langKey{ws.SessionID, lang}
			if err := w.client.ClaimExclusive(ctx, ws.SessionID, lang); err != nil {
				if isConflict(err) {
					w.mu.Lock()
					_, already := w.standby[k]
					w.standby[k] = standby{gen: gen, at: w.Now()}
					w.mu.Unlock()
					if !already {
						w.Logger.Info("another worker produces the language: standing by", logSession, ws.SessionID, logLanguage, lang)
					}
				} else if ctx.Err() == nil {
					w.Logger.Warn("claiming", logSession, ws.SessionID, logLanguage, lang, logError, err)
				}
				continue
			}
			w.mu.Lock()
			delete(w.standby, k)
			w.mu.Unlock()
			s.addStream(lang)
			w.m.langs.Inc()
			rec, tr, syn := s.rec.Name(), s.eng.Translators[Pair{ws.SourceLanguage, lang}].Name(), s.eng.Synthesizers[lang].Name()
			w.m.start(ws.SourceLanguage, lang, rec, tr, syn)
			w.Logger.Info("language started", logSession, ws.SessionID, logLanguage, lang,
				"tier", ws.QualityTier, "recognizer", rec, "translator", tr, "synthesizer", syn)
		}
		// Opus always where the server takes it; PCM only for the
		// languages with listeners of PCM.
		s.each(func(st *stream) { st.setDemand(ws) })
		for lang := range mine {
			if slices.Contains(want, lang) {
				continue
			}
			w.stopLanguage(ctx, s, lang)
		}
		if len(s.languages()) == 0 {
			w.stopSession(ctx, s)
		}
	}
	w.mu.Lock()
	var gone []*session
	for id, s := range w.sessions {
		if !live[id] {
			gone = append(gone, s)
		}
	}
	for k := range w.standby {
		if !live[k.session] {
			delete(w.standby, k)
		}
	}
	w.mu.Unlock()
	for _, s := range gone {
		for lang := range s.languages() {
			w.stopLanguage(ctx, s, lang)
		}
		w.stopSession(ctx, s)
	}
}

func (w *Worker) stopLanguage(ctx context.Context, s *session, lang string) {
	s.removeStream(lang)
	w.m.langs.Dec()
	// A session that ended is gone from the server; there is nothing to release.
	if err := w.client.Release(ctx, s.id, lang); err != nil && ctx.Err() == nil && !ended(err) {
		w.Logger.Warn("releasing", logSession, s.id, logLanguage, lang, logError, err)
	}
	w.Logger.Info("language stopped", logSession, s.id, logLanguage, lang)
}

func (w *Worker) stopSession(ctx context.Context, s *session) {
	w.mu.Lock()
	delete(w.sessions, s.id)
	w.mu.Unlock()
	s.stop()
	w.m.sessions.Dec()
	if err := w.client.Unsubscribe(ctx, s.id); err != nil && ctx.Err() == nil && !ended(err) {
		w.Logger.Warn("unsubscribing", logSession, s.id, logError, err)
	}
	w.Logger.Info("session stopped", logSession, s.id)
}

// standingBy reports whether a language lost a claim race and should not
// be claimed again yet: the session list is the one (gen) the loss was
// seen with, and StandbyRetry has not passed. A newer list that still
// shows the language produced keeps it out of wanted anyway.
func (w *Worker) standingBy(session, lang string, gen uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	sb, ok := w.standby[langKey{session, lang}]
	return ok && sb.gen == gen && w.Now().Sub(sb.at) < StandbyRetry
}

// isConflict reports a claim another worker holds.
func isConflict(err error) bool {
	var e *client.Error
	return errors.As(err, &e) && e.Code == "CONFLICT"
}

// ended reports an error saying the session is gone.
func ended(err error) bool {
	var e *client.Error
	return errors.As(err, &e) && (e.Code == "SESSION_NOT_FOUND" || e.Code == "SESSION_ENDED" || e.Code == "NOT_FOUND")
}

// enginesFor returns the engines of a quality tier: Tiers[tier], or
// Engines when the tier has none.
func (w *Worker) enginesFor(tier string) *Engines {
	if e := w.Tiers[tier]; e != nil {
		return e
	}
	return w.Engines
}

// offer lists the pairs some tier's engines can produce (see
// Engines.Offer).
func (w *Worker) offer() map[string][]string {
	all := map[string]map[string]bool{}
	add := func(e *Engines) {
		for from, targets := range e.Offer() {
			if all[from] == nil {
				all[from] = map[string]bool{}
			}
			for _, to := range targets {
				all[from][to] = true
			}
		}
	}
	add(w.Engines)
	for _, e := range w.Tiers {
		if e != nil {
			add(e)
		}
	}
	out := make(map[string][]string, len(all))
	for from, targets := range all {
		for to := range targets {
			out[from] = append(out[from], to)
		}
		slices.Sort(out[from])
	}
	return out
}

// TierNames returns the quality tiers the worker serves: "standard"
// always, and every tier of Tiers, sorted.
func (w *Worker) TierNames() []string {
	out := []string{"standard"}
	for t, e := range w.Tiers {
		if e != nil && t != "standard" {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// newSegmenter returns a fresh Segmenter configured like VAD.
func (w *Worker) newSegmenter() *Segmenter {
	return &Segmenter{Threshold: w.VAD.Threshold, Hangover: w.VAD.Hangover, PreRoll: w.VAD.PreRoll,
		MinSpeech: w.VAD.MinSpeech, MaxUtterance: w.VAD.MaxUtterance}
}
