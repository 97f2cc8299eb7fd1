package realtime_test

// Tests of the concurrency fixes in realtime/. Each one forces its
// interleaving with a wrapper of the session service, presence or broker
// that acts at the critical moment, instead of hoping for it.
//
// Where the fix makes the competing action wait for a lock, the hook waits
// for that action either to have happened (the bug) or to be parked on a
// lock in the function named (the fix): see blockedIn.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
	dto "github.com/prometheus/client_model/go"
)

// blockedIn reports whether some goroutine is waiting for a sync.Mutex or
// sync.RWMutex taken directly by fn (e.g. "(*Server).leaveListener"): the
// first realtime function on its stack, below the sync package's, is fn.
func blockedIn(fn string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, rest, _ := strings.Cut(g, "\n")
		_, reason, _ := strings.Cut(header, "[")
		if !strings.HasPrefix(reason, "sync.Mutex.Lock") && !strings.HasPrefix(reason, "sync.RWMutex.") {
			continue
		}
		for _, line := range strings.Split(rest, "\n") {
			if strings.HasPrefix(line, "github.com/pentecost/pentecost/realtime.") {
				if strings.Contains(line, "realtime."+fn+"(") {
					return true
				}
				break
			}
		}
	}
	return false
}

// calledFrom reports whether fn (e.g. "(*Server).translationNotice") is
// on the calling goroutine's stack.
func calledFrom(fn string) bool {
	pc := make([]uintptr, 64)
	frames := runtime.CallersFrames(pc[:runtime.Callers(2, pc)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "realtime."+fn) {
			return true
		}
		if !more {
			return false
		}
	}
}

// waitUntil polls cond until it holds or wait has passed; hooks use it
// where t.Fatal is not allowed (they run on the server's goroutines).
func waitUntil(cond func() bool) bool {
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// nextOf returns c's next message of type typ, for goroutines other than
// the test's.
func nextOf(c *client, typ string) (msg, error) {
	timeout := time.After(wait)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				return msg{}, fmt.Errorf("connection closed (code %d) while waiting for %q", c.closeCode, typ)
			}
			if m.typ() == typ {
				return m, nil
			}
		case <-timeout:
			return msg{}, fmt.Errorf("no %q within %s", typ, wait)
		}
	}
}

// hookPresence is a presence whose Refresh behaves like the shared (Redis)
// one: each entry given is kept or put back, with the language given. The
// hooks run before the call they name (onProduced: after it, on its result).
// When onRefresh returns true, that Refresh is the last to write anything
// (later rounds would repair what the test looks at) and frozen is closed
// once it has written.
type hookPresence struct {
	pentecost.Presence

	onRefresh  func(entries []pentecost.PresenceEntry) (last bool)
	frozen     chan struct{}
	isFrozen   atomic.Bool
	onClaim    func(sessionID, language, workerID string)
	onProduced func(sessionID string, langs []string) []string

	mu      sync.Mutex
	left    map[string]bool // connection IDs whose Leave returned
	changed map[string]bool // connection IDs whose ChangeLanguage returned
	release map[string]bool // "session/language/worker" whose ReleaseLanguage returned
}

func newHookPresence(p pentecost.Presence) *hookPresence {
	return &hookPresence{Presence: p, frozen: make(chan struct{}), left: map[string]bool{}, changed: map[string]bool{}, release: map[string]bool{}}
}

func (p *hookPresence) done(m map[string]bool, k string) func() bool {
	return func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return m[k]
	}
}

func (p *hookPresence) Refresh(ctx context.Context, sessionID string, entries []pentecost.PresenceEntry) ([]string, error) {
	if p.isFrozen.Load() {
		return nil, nil
	}
	last := p.onRefresh != nil && p.onRefresh(entries)
	for _, e := range entries {
		if _, err := p.Presence.Join(ctx, e, 0, true); err != nil {
			return nil, err
		}
	}
	if last {
		p.isFrozen.Store(true)
		close(p.frozen)
	}
	return nil, nil
}

// hookRefreshOf arms p to call act once, inside the first Refresh whose
// entries include the connection *id (once set), and to freeze after it.
// act returns whether the competing action happened or waits for a lock.
func (p *hookPresence) hookRefreshOf(id *atomic.Value, act func(connID string) bool) *atomic.Bool {
	var ok atomic.Bool
	var hooked atomic.Bool
	p.onRefresh = func(entries []pentecost.PresenceEntry) bool {
		cid, _ := id.Load().(string)
		if cid == "" || !slices.ContainsFunc(entries, func(x pentecost.PresenceEntry) bool { return x.ConnID == cid }) ||
			!hooked.CompareAndSwap(false, true) {
			return false
		}
		ok.Store(act(cid))
		return true
	}
	return &ok
}

// waitFrozen waits for the hooked refresh to have written.
func (p *hookPresence) waitFrozen(t *testing.T, ok *atomic.Bool) {
	t.Helper()
	select {
	case <-p.frozen:
	case <-time.After(wait):
		t.Fatal("no refresh with the listener")
	}
	if !ok.Load() {
		t.Fatal("the competing action neither happened nor waited for a lock")
	}
}

func (p *hookPresence) Leave(ctx context.Context, sessionID, connID string) (pentecost.PresenceCounts, bool, error) {
	counts, left, err := p.Presence.Leave(ctx, sessionID, connID)
	p.mu.Lock()
	p.left[connID] = true
	p.mu.Unlock()
	return counts, left, err
}

func (p *hookPresence) ChangeLanguage(ctx context.Context, sessionID, connID, language string) (pentecost.PresenceCounts, error) {
	counts, err := p.Presence.ChangeLanguage(ctx, sessionID, connID, language)
	p.mu.Lock()
	p.changed[connID] = true
	p.mu.Unlock()
	return counts, err
}

func (p *hookPresence) ClaimLanguage(ctx context.Context, sessionID, language, workerID string) (bool, error) {
	if p.onClaim != nil {
		p.onClaim(sessionID, language, workerID)
	}
	return p.Presence.ClaimLanguage(ctx, sessionID, language, workerID)
}

func (p *hookPresence) ReleaseLanguage(ctx context.Context, sessionID, language, workerID string) (bool, error) {
	produced, err := p.Presence.ReleaseLanguage(ctx, sessionID, language, workerID)
	p.mu.Lock()
	p.release[sessionID+"/"+language+"/"+workerID] = true
	p.mu.Unlock()
	return produced, err
}

func (p *hookPresence) ProducedLanguages(ctx context.Context, sessionID string) ([]string, error) {
	langs, err := p.Presence.ProducedLanguages(ctx, sessionID)
	if err == nil && p.onProduced != nil {
		langs = p.onProduced(sessionID, langs)
	}
	return langs, err
}

// hookSessions runs onFind after each FindSessionByID.
type hookSessions struct {
	pentecost.SessionService
	onFind func(id string)
}

func (s *hookSessions) FindSessionByID(ctx context.Context, id string) (*pentecost.Session, error) {
	sess, err := s.SessionService.FindSessionByID(ctx, id)
	if s.onFind != nil {
		s.onFind(id)
	}
	return sess, err
}

// hookBroker records control-stream subscriptions and the events published.
type hookBroker struct {
	pentecost.Broker
	control atomic.Int64 // control-stream subscriptions in place
	subbed  atomic.Bool  // some control stream was subscribed to
	events  chan string  // types of the events published (dropped when full)
}

func newHookBroker(b pentecost.Broker) *hookBroker {
	return &hookBroker{Broker: b, events: make(chan string, 64)}
}

func (b *hookBroker) Subscribe(ctx context.Context, key pentecost.StreamKey, h pentecost.FrameHandler) (func(), error) {
	unsub, err := b.Broker.Subscribe(ctx, key, h)
	if err != nil || key.Language != pentecost.ControlLanguage {
		return unsub, err
	}
	b.control.Add(1)
	b.subbed.Store(true)
	var once sync.Once
	return func() {
		once.Do(func() { b.control.Add(-1) })
		unsub()
	}, nil
}

func (b *hookBroker) Publish(ctx context.Context, key pentecost.StreamKey, f *pentecost.Frame) error {
	if f.Event != nil {
		select {
		case b.events <- f.Event.Type:
		default:
		}
	}
	return b.Broker.Publish(ctx, key, f)
}

// owner is the context of the user the tests' sessions belong to.
func owner() context.Context {
	return pentecost.NewContextWithUser(context.Background(), &pentecost.User{ID: "alice", Name: "alice", Issuer: pentecost.EmbeddedIssuer})
}

func pause(t testing.TB, e *env, id string, paused bool) {
	t.Helper()
	if _, err := e.Sessions.UpdateSession(owner(), id, pentecost.SessionUpdate{
		BroadcastState: &pentecost.BroadcastStateUpdate{Paused: &paused}}); err != nil {
		t.Error(err)
	}
}

func paused(m msg) bool {
	st, _ := m.m["broadcastState"].(map[string]any)
	p, _ := st["isPaused"].(bool)
	return p
}

// Finding 1: a PATCH handled between a new hub session's store read and
// its use of that read is not overwritten by the older state.
func TestNewHubSessionKeepsNewerState(t *testing.T) {
	var e *env
	var hooked atomic.Bool
	var sessID string
	var broker *hookBroker
	e = newEnv(t, func(s *realtime.Server) {
		broker = newHookBroker(s.Broker)
		s.Broker = broker
		s.Sessions = &hookSessions{SessionService: s.Sessions, onFind: func(id string) {
			// The first read after the control stream is subscribed is
			// subscribeControl's: pause right after it.
			if id == sessID && broker.subbed.Load() && hooked.CompareAndSwap(false, true) {
				pause(t, e, id, true)
			}
		}}
	})
	sess := e.createSession("alice")
	sessID = sess.ID

	l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
	j := l.expect("sessionJoined")
	if !hooked.Load() {
		t.Fatal("the hook did not run")
	}
	if !paused(j) {
		t.Errorf("first listener joined with %v, want paused", j.m["broadcastState"])
	}
	l2 := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
	if j := l2.expect("sessionJoined"); !paused(j) {
		t.Errorf("second listener joined with %v, want paused", j.m["broadcastState"])
	}
}

// Finding 2: a cluster refresh does not put back a listener that left
// after the refresh took its snapshot.
func TestRefreshDoesNotRestoreLeftListener(t *testing.T) {
	var hp *hookPresence
	var target atomic.Value // connection ID of the listener
	var l *client
	e := newEnv(t, func(s *realtime.Server) {
		s.PresenceRefresh = 5 * time.Millisecond
		hp = newHookPresence(s.Presence)
		s.Presence = hp
	})
	ok := hp.hookRefreshOf(&target, func(id string) bool {
		l.closeNormally()
		return waitUntil(func() bool { return hp.done(hp.left, id)() || blockedIn("(*Server).leaveListener") })
	})
	sess := e.createSession("alice")
	l = e.dial("sessionId=" + sess.ID + "&targetLanguage=es")
	id, _ := l.expect("sessionJoined").m["connectionId"].(string)
	target.Store(id)

	hp.waitFrozen(t, ok)
	poll(t, "the listener's leave", hp.done(hp.left, id))
	counts, _ := e.Presence.Counts(context.Background(), sess.ID)
	if counts.Total != 0 || counts.ByLanguage["es"] != 0 {
		t.Fatalf("counts after the only listener left = %+v", counts)
	}
}

// Finding 2: a cluster refresh does not move a listener back to the
// language it had when the refresh took its snapshot.
func TestRefreshDoesNotRevertLanguageChange(t *testing.T) {
	var hp *hookPresence
	var target atomic.Value
	var l *client
	e := newEnv(t, func(s *realtime.Server) {
		s.PresenceRefresh = 5 * time.Millisecond
		hp = newHookPresence(s.Presence)
		s.Presence = hp
	})
	ok := hp.hookRefreshOf(&target, func(id string) bool {
		l.send(map[string]any{"action": "changeLanguage", "targetLanguage": "fr"})
		return waitUntil(func() bool { return hp.done(hp.changed, id)() || blockedIn("(*Server).handleListener") })
	})
	sess := e.createSession("alice")
	l = e.dial("sessionId=" + sess.ID + "&targetLanguage=es")
	id, _ := l.expect("sessionJoined").m["connectionId"].(string)
	target.Store(id)

	hp.waitFrozen(t, ok)
	l.expect("languageChanged")
	counts, _ := e.Presence.Counts(context.Background(), sess.ID)
	if counts.ByLanguage["fr"] != 1 || counts.ByLanguage["es"] != 0 {
		t.Fatalf("counts after es → fr = %+v", counts)
	}
}

var workerAuth = dialOpts{header: http.Header{"Authorization": {"Bearer worker-secret"}}}

// Finding 3: the cluster's renewal of a worker's claims does not bring back
// a claim the worker released meanwhile.
func TestRefreshClaimsDoesNotReviveReleasedClaim(t *testing.T) {
	var hp *hookPresence
	var w *client
	var sessID, workerID atomic.Value
	var hooked, ok atomic.Bool
	renewed := make(chan struct{})
	e := newEnv(t, func(s *realtime.Server) {
		s.PresenceRefresh = 5 * time.Millisecond
		hp = newHookPresence(s.Presence)
		s.Presence = hp
	})
	// The worker claims exclusively: every ClaimLanguage is a renewal.
	hp.onClaim = func(id, lang, worker string) {
		if id != sessID.Load() || lang != "es" || worker != workerID.Load() || !hooked.CompareAndSwap(false, true) {
			return
		}
		defer close(renewed)
		w.send(map[string]any{"action": "releaseLanguage", "sessionId": id, "targetLanguage": "es"})
		ok.Store(waitUntil(func() bool {
			return hp.done(hp.release, id+"/es/"+worker)() || blockedIn("(*Server).workerClaim")
		}))
	}
	sess := e.createSession("alice")
	sessID.Store(sess.ID)
	w = e.dial("role=worker", workerAuth)
	workerID.Store(w.expect("workerConnected").m["connectionId"].(string))
	w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es", "exclusive": true})
	w.expect("languageClaimed")

	select {
	case <-renewed:
	case <-time.After(wait):
		t.Fatal("the claim was not renewed")
	}
	if !ok.Load() {
		t.Fatal("the release neither happened nor waited for a lock")
	}
	w.expect("languageReleased")
	langs, _ := e.Presence.ProducedLanguages(context.Background(), sess.ID)
	if slices.Contains(langs, "es") {
		t.Fatalf("produced languages after the release = %v", langs)
	}
	// Another worker can take the language at once.
	w2 := e.dial("role=worker", workerAuth)
	w2.expect("workerConnected")
	w2.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es", "exclusive": true})
	if m := claimReply(t, w2); m.typ() != "languageClaimed" {
		t.Fatalf("second worker's claim: %v", m.m)
	}
}

// Finding 4: a listener's join reply is its first message and carries the
// state that the state messages after it change. No hook can stand between
// the two steps the join took before the fix (no call leaves the server
// between them), so this one toggles pause while listeners join: with the
// fix it cannot fail; without it, it failed in most runs (see the report).
func TestJoinReplyFirstUnderStateChanges(t *testing.T) {
	// State messages are never dropped; under this flood a listener's
	// queue of them must not count as falling behind (4001).
	e := newEnv(t, func(s *realtime.Server) { s.QueueFrames = 1 << 20 })
	sess := e.createSession("alice")
	stop := make(chan struct{})
	toggled := make(chan struct{})
	go func() {
		defer close(toggled)
		for p := true; ; p = !p {
			select {
			case <-stop:
				return
			default:
			}
			// Announced without a store write, for many changes per join.
			st := pentecost.SessionActive
			if p {
				st = pentecost.SessionPaused
			}
			if err := e.Realtime.SessionUpdated(context.Background(), &pentecost.Session{ID: sess.ID, Status: st,
				BroadcastState: pentecost.BroadcastState{Paused: p, Volume: 1}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(stop); <-toggled }()

	const joiners, joins = 8, 25
	var wg sync.WaitGroup
	for range joiners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range joins {
				if err := checkJoin(e, sess.ID); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// checkJoin joins as a listener and checks that the first message is the
// reply and the first state message after it is a change from its state.
func checkJoin(e *env, id string) error {
	c, err := e.tryDial("sessionId=" + id + "&targetLanguage=en")
	if err != nil {
		return err
	}
	defer c.closeNormally()
	var first msg
	select {
	case first = <-c.in:
	case <-time.After(wait):
		return fmt.Errorf("no reply")
	}
	if first.typ() != "sessionJoined" {
		return fmt.Errorf("first message = %v, want sessionJoined", first.m)
	}
	timeout := time.After(wait)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				return fmt.Errorf("closed with %d", c.closeCode)
			}
			switch m.typ() {
			case "sessionPaused", "sessionResumed":
				if (m.typ() == "sessionPaused") == paused(first) {
					return fmt.Errorf("joined with paused=%v, then %s", paused(first), m.typ())
				}
				return nil
			}
		case <-timeout:
			return fmt.Errorf("no state message after the join")
		}
	}
}

// Finding 5: a listener told translationUnavailable while a worker claims
// its language ends up told translationAvailable.
func TestTranslationNoticeNotAfterAvailable(t *testing.T) {
	var hp *hookPresence
	var w *client
	var armed atomic.Bool
	hookErr := make(chan error, 1)
	e := newEnv(t, func(s *realtime.Server) {
		hp = newHookPresence(s.Presence)
		s.Presence = hp
	})
	sess := e.createSession("alice")
	// translationNotice has read "not produced"; a worker claims now.
	hp.onProduced = func(id string, langs []string) []string {
		if id != sess.ID || !calledFrom("(*Server).translationNotice") || !armed.CompareAndSwap(true, false) {
			return langs
		}
		w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
		// The reader answers in order: this error comes once the claim,
		// and its translationAvailable, are done.
		w.send(map[string]any{"action": "noSuchAction"})
		_, err := nextOf(w, "error")
		hookErr <- err
		return langs
	}
	w = e.dial("role=worker", workerAuth)
	w.expect("workerConnected")

	armed.Store(true)
	l := e.dial("sessionId=" + sess.ID + "&targetLanguage=es")
	l.expect("sessionJoined")
	if err := <-hookErr; err != nil {
		t.Fatal(err)
	}
	l.send(map[string]any{"action": "pausePlayback"}) // its reply follows everything the join sent
	var notices []string
	for {
		m := l.next()
		if m.typ() == "playbackPaused" {
			break
		}
		if strings.HasPrefix(m.typ(), "translation") {
			notices = append(notices, m.typ())
		}
	}
	if len(notices) == 0 || notices[len(notices)-1] != "translationAvailable" {
		t.Fatalf("translation notices = %v, want translationAvailable last", notices)
	}
}

// Workers may name a session as a person typed it in every action, as in
// claimLanguage.
func TestWorkerSessionIDAsTyped(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	typed := strings.ToUpper(sess.ID)
	es := e.dial("sessionId=" + sess.ID + "&targetLanguage=es")
	es.expect("sessionJoined")
	w := e.dial("role=worker", workerAuth)
	w.expect("workerConnected")
	w.send(map[string]any{"action": "subscribeSession", "sessionId": typed})
	w.expect("subscribed")
	w.send(map[string]any{"action": "claimLanguage", "sessionId": typed, "targetLanguage": "es"})
	w.expect("languageClaimed")
	w.send(map[string]any{"action": "publishAudio", "sessionId": typed, "targetLanguage": "es", "audioData": base64.StdEncoding.EncodeToString(audio(1, 640))})
	m := es.expect("audioData")
	if got, _ := base64.StdEncoding.DecodeString(m.m["audioData"].(string)); !bytes.Equal(got, audio(1, 640)) {
		t.Fatalf("audio = %v", m.m)
	}
	w.send(map[string]any{"action": "publishCaption", "sessionId": typed, "targetLanguage": "es", "text": "hola", "final": true})
	if m := es.expect("caption"); m.m["text"] != "hola" {
		t.Fatalf("caption = %v", m.m)
	}
	w.send(map[string]any{"action": "unsubscribeSession", "sessionId": typed})
	if m := w.expect("unsubscribed"); m.m["sessionId"] != sess.ID {
		t.Fatalf("unsubscribed = %v", m.m)
	}
	for _, action := range []string{"publishAudio", "unsubscribeSession"} {
		w.send(map[string]any{"action": action, "sessionId": "not an id", "targetLanguage": "es", "audioData": base64.StdEncoding.EncodeToString(audio(1, 640))})
		if m := w.expect("error"); m.m["code"] != pentecost.EINVALIDSESSIONID || m.m["action"] != action {
			t.Fatalf("%s with a bad ID: %v", action, m.m)
		}
	}
}

// metric returns the value of a gauge or counter of the realtime server.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	mfs, err := e.Registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += value(m)
		}
		return sum
	}
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	}
	return 0
}

// Finding 6: the queued-frames gauge comes back to zero after a listener
// that fell behind (frames dropped, then disconnected) is gone.
func TestQueuedFramesGaugeAfterSlowListener(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) { s.QueueFrames = 4 })
	sess := e.createSession("alice")
	l := e.dial("sessionId="+sess.ID+"&targetLanguage=en&audioFormat=binary", dialOpts{noRead: true})
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	poll(t, "the listener to join", func() bool { return e.metric("pentecost_ws_queued_frames") == 0 && len(e.Conns()) == 2 })

	// The listener reads nothing: once the socket buffers are full its
	// queue fills, audio is dropped and it is disconnected as too slow.
	chunk := audio(1, pentecost.MaxAudioChunk)
	deadline := time.Now().Add(4 * wait)
	for e.metric("pentecost_ws_slow_disconnects_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the listener was never too slow")
		}
		for range 50 {
			sp.sendBinary(chunk)
		}
	}
	if e.metric("pentecost_ws_frames_dropped_total") == 0 {
		t.Fatal("no frame dropped")
	}
	_ = l.conn.Close()
	sp.closeNormally()
	poll(t, "connections to end", func() bool { return e.metric("pentecost_ws_connections") == 0 })
	poll(t, "the queued-frames gauge to reach 0", func() bool { return e.metric("pentecost_ws_queued_frames") == 0 })
}

// Finding 6: shutting down during a speaker's grace period lets the hub
// session go (here: its control-stream subscription).
func TestCloseReleasesGracePeriodSession(t *testing.T) {
	var b *hookBroker
	e := newEnv(t, func(s *realtime.Server) {
		s.SpeakerGrace = time.Hour
		b = newHookBroker(s.Broker)
		s.Broker = b
	})
	sess := e.createSession("alice")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	sp.closeNormally()
	for typ := ""; typ != pentecost.EventSpeakerDisconnected; {
		select {
		case typ = <-b.events:
		case <-time.After(wait):
			t.Fatal("no grace period")
		}
	}
	if n := b.control.Load(); n != 1 {
		t.Fatalf("control subscriptions during the grace period = %d", n)
	}
	if err := e.Realtime.Close(); err != nil {
		t.Fatal(err)
	}
	if n := b.control.Load(); n != 0 {
		t.Fatalf("control subscriptions after Close = %d", n)
	}
}
