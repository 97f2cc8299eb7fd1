package worker

import (
	"context"
	"sync"
	"time"
)

// LanguageStatus is how the production of one language of a session is
// going, for the speaker's page.
type LanguageStatus struct {
	// Stage is the stage that is failing ("recognize", "translate",
	// "synthesize"); "" while the language is produced.
	Stage string
	// ErrorCode is the failing engine's code (engine.Err*); never its text.
	ErrorCode string
	// LatencyMs is, for the latest segment, from the end of its speech to
	// its first translated audio leaving the worker.
	LatencyMs int
}

// statusInterval is the least time between two status reports of a
// language.
const statusInterval = 2 * time.Second

// statusTracker reports a language's status when it changes, at most every
// statusInterval.
type statusTracker struct {
	report func(LanguageStatus)
	notify chan struct{}

	mu  sync.Mutex
	cur LanguageStatus // guarded by mu
}

func (t *statusTracker) set(f func(*LanguageStatus)) {
	t.mu.Lock()
	old := t.cur
	f(&t.cur)
	changed := old != t.cur
	t.mu.Unlock()
	if changed {
		select {
		case t.notify <- struct{}{}:
		default:
		}
	}
}

// stage notes the stage at work; only failures are reported (see fail).
func (t *statusTracker) stage(string) {}

// fail reports a failing stage.
func (t *statusTracker) fail(stage, code string) {
	t.set(func(s *LanguageStatus) { s.Stage, s.ErrorCode = stage, code })
}

// ok clears a failure of stage.
func (t *statusTracker) ok(stage string) {
	t.set(func(s *LanguageStatus) {
		if s.Stage == stage {
			s.Stage, s.ErrorCode = "", ""
		}
	})
}

// latency records the latest segment's latency.
func (t *statusTracker) latency(d time.Duration) {
	t.set(func(s *LanguageStatus) { s.LatencyMs = int(d.Milliseconds()) })
}

// run sends the reports until ctx ends.
func (t *statusTracker) run(ctx context.Context) {
	var last time.Time
	var sent LanguageStatus
	first := true
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.notify:
		}
		if wait := time.Until(last.Add(statusInterval)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		t.mu.Lock()
		cur := t.cur
		t.mu.Unlock()
		if first || cur != sent {
			t.report(cur)
			sent, last, first = cur, time.Now(), false
		}
	}
}
