package realtime

import (
	"context"
	"encoding/json"
	"math"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sessionid"
)

// Stages and error codes a worker may report (reportLanguageStatus). Codes
// are words, never an engine's text, so the speaker page can say what they
// mean in the speaker's language.
var (
	reportStages = map[string]bool{"": true, "recognize": true, "translate": true, "synthesize": true}
	reportCodes  = map[string]bool{"": true, "timeout": true, "throttled": true, "unavailable": true,
		"refused": true, "bad_response": true, "unsupported": true, "internal": true}
)

const (
	// maxReportLatency bounds latencyMs: anything later is not live.
	maxReportLatency = 10 * time.Minute
	// reportRate and reportBurst limit one worker connection's reports: a
	// worker reports a language after each utterance (about one a second)
	// and at once on a failure, so 20 a second over all its languages is
	// ample and still cheap to publish.
	reportRate  = 20
	reportBurst = 40
	// reportRepublish: a report that changes neither stage nor error code
	// is published at most this often per language; the speaker's page
	// shows latency at 2 s granularity anyway.
	reportRepublish = time.Second
	// languageStatusEvery bounds the speaker's languageStatusChanged
	// updates of one session.
	languageStatusEvery = 2 * time.Second
)

// reportState is one worker connection's report limits.
type reportState struct {
	tokens float64
	at     time.Time
	last   map[claimKey]pentecost.LanguageReport // last published, by session and language
}

type claimKey struct{ session, lang string }

// workerReport handles reportLanguageStatus: a worker's status of a language
// it claimed, published on the session's control stream so that the
// speaker hears of it on whichever node it is. Nothing is sent back unless
// it fails. Errors (the connection stays): ACTION_NOT_ALLOWED (no claim),
// VALIDATION_INVALID_FIELD (stage, errorCode, latencyMs), RATE_LIMIT_EXCEEDED.
func (s *Server) workerReport(ctx context.Context, c *conn, m *Message) {
	lang, err := pentecost.ValidateLanguage(m.TargetLanguage)
	if err != nil {
		c.replyWorkerError(m, err)
		return
	}
	id, err := sessionid.Normalize(m.SessionID)
	if err != nil {
		c.replyWorkerError(m, err)
		return
	}
	if !reportStages[m.Stage] {
		c.replyWorkerError(m, fieldError("stage", `stage must be "recognize", "translate", "synthesize" or "".`))
		return
	}
	if !reportCodes[m.ErrorCode] {
		c.replyWorkerError(m, fieldError("errorCode", `errorCode must be one of "timeout", "throttled", "unavailable", "refused", "bad_response", "unsupported", "internal" or "".`))
		return
	}
	latency := 0
	if len(m.LatencyMs) > 0 {
		var ms float64
		if err := json.Unmarshal(m.LatencyMs, &ms); err != nil || math.IsNaN(ms) || ms < 0 || ms > float64(maxReportLatency.Milliseconds()) {
			c.replyWorkerError(m, fieldError("latencyMs", "latencyMs must be a number of milliseconds from 0 to 600000."))
			return
		}
		latency = int(ms)
	}
	now := s.Now()
	rep := pentecost.LanguageReport{WorkerID: c.worker.ID, Stage: m.Stage, ErrorCode: m.ErrorCode, LatencyMs: latency, At: now}
	ws := c.wstate
	ws.mu.Lock()
	_, claimed := ws.claims[id][lang]
	if !claimed {
		ws.mu.Unlock()
		c.replyWorkerError(m, pentecost.Errorf(pentecost.EACTIONNOTALLOWED, "Claim the language before reporting its status."))
		return
	}
	r := &ws.reports
	if r.at.IsZero() {
		r.tokens = reportBurst
	} else {
		r.tokens = math.Min(reportBurst, r.tokens+now.Sub(r.at).Seconds()*reportRate)
	}
	r.at = now
	if r.tokens < 1 {
		ws.mu.Unlock()
		c.replyWorkerError(m, &pentecost.Error{Code: pentecost.ERATELIMIT, Message: "Too many status reports.", RetryAfter: time.Second})
		return
	}
	r.tokens--
	k := claimKey{id, lang}
	prev, seen := r.last[k]
	publish := !seen || prev.Stage != rep.Stage || prev.ErrorCode != rep.ErrorCode || now.Sub(prev.At) >= reportRepublish
	if publish {
		if r.last == nil {
			r.last = make(map[claimKey]pentecost.LanguageReport)
		}
		r.last[k] = rep
	}
	ws.mu.Unlock()
	if publish {
		s.publishEvent(ctx, id, &pentecost.SessionEvent{Type: pentecost.EventLanguageStatus, Language: lang, Report: &rep})
	}
}

// onLanguageStatus records a worker's report on this node and tells a
// local speaker, at most every languageStatusEvery.
func (hs *hubSession) onLanguageStatus(ev *pentecost.SessionEvent) {
	if ev.Report == nil || ev.Language == "" {
		return
	}
	hs.mu.Lock()
	if hs.langStatus == nil {
		hs.langStatus = make(map[string]pentecost.LanguageReport)
	}
	hs.langStatus[ev.Language] = *ev.Report
	hs.mu.Unlock()
	hs.languageStatusChanged()
}

// forgetLanguageStatus drops a language nobody produces any more.
func (hs *hubSession) forgetLanguageStatus(lang string) {
	hs.mu.Lock()
	delete(hs.langStatus, lang)
	hs.mu.Unlock()
}

// languageStatusChanged sends the local speaker a sessionStatus with
// updateReason languageStatusChanged, now or, when one went out less than
// languageStatusEvery ago, once that time is up (one timer at most).
func (hs *hubSession) languageStatusChanged() {
	s := hs.hub.srv
	hs.mu.Lock()
	if hs.speaker == nil || hs.ended || hs.langStatusTimer != nil {
		hs.mu.Unlock()
		return
	}
	wait := languageStatusEvery - time.Since(hs.langStatusSent)
	if wait > 0 {
		hs.langStatusTimer = time.AfterFunc(wait, func() {
			hs.mu.Lock()
			hs.langStatusTimer = nil
			hs.mu.Unlock()
			hs.languageStatusChanged()
		})
		hs.mu.Unlock()
		return
	}
	hs.langStatusSent = time.Now()
	sp := hs.speaker
	hs.mu.Unlock()
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	s.sendStatus(ctx, sp, "sessionStatus", "languageStatusChanged")
}

// languageStatusLocked is sessionStatus's languageStatus: each produced
// language's last report. Callers hold hs.mu.
func (hs *hubSession) languageStatusLocked() map[string]obj {
	out := make(map[string]obj, len(hs.langStatus))
	for l, r := range hs.langStatus {
		out[l] = obj{"workerId": r.WorkerID, "stage": r.Stage, "errorCode": r.ErrorCode, "latencyMs": r.LatencyMs, "updatedAt": r.At.UnixMilli()}
	}
	return out
}
