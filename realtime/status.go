package realtime

import (
	"context"
	"time"

	"github.com/pentecost/pentecost"
)

// sendStatus sends the speaker its session's counts and state, as
// sessionStatus (with reason) or stateRestored.
func (s *Server) sendStatus(ctx context.Context, c *conn, typ, reason string) {
	hs := c.session
	counts, err := s.Presence.Counts(ctx, hs.id)
	if err != nil {
		c.replyError(err)
		return
	}
	produced := s.producedLanguages(ctx, hs.id)
	hs.mu.Lock()
	hs.statusCounts, hs.statusSent = counts, true
	info := hs.info
	ls := hs.languageStatusLocked()
	hs.mu.Unlock()
	o := s.statusObj(typ, reason, &info, counts, produced)
	o["languageStatus"] = ls
	c.send(o)
}

// producedLanguages returns the languages workers produce for a session
// now ([] when presence cannot say: the status is still worth sending).
func (s *Server) producedLanguages(ctx context.Context, id string) []string {
	langs, err := s.Presence.ProducedLanguages(ctx, id)
	if err != nil || langs == nil {
		return []string{}
	}
	return langs
}

// statusObj builds sessionStatus or stateRestored. producedLanguages lists
// the languages a worker produces now, so that the speaker sees which
// translations are running.
func (s *Server) statusObj(typ, reason string, info *pentecost.Session, counts pentecost.PresenceCounts, produced []string) obj {
	o := obj{
		"producedLanguages":    produced,
		"type":                 typ,
		"sessionId":            info.ID,
		"listenerCount":        counts.Total,
		"languageDistribution": counts.ByLanguage,
		"broadcastState":       info.BroadcastState,
	}
	if typ == "sessionStatus" {
		o["updateReason"] = reason
		o["sessionDuration"] = seconds(s.Now().Sub(info.CreatedAt))
	}
	return o
}

// countsChanged records new counts of a session: they are stored in the
// next batch, and a local speaker hears at once of a change of more than
// 10 % or of a new language.
func (s *Server) countsChanged(hs *hubSession, counts pentecost.PresenceCounts) {
	s.hub.markDirty(hs.id)
	hs.mu.Lock()
	sp := hs.speaker
	if sp == nil || hs.ended {
		hs.mu.Unlock()
		return
	}
	reason := ""
	prev := hs.statusCounts
	switch {
	case !hs.statusSent:
		reason = "listenerCountChanged"
	case newLanguage(prev, counts):
		reason = "newLanguage"
	case changedMoreThan10(prev.Total, counts.Total):
		reason = "listenerCountChanged"
	}
	if reason == "" {
		hs.mu.Unlock()
		return
	}
	hs.statusCounts, hs.statusSent = counts, true
	info := hs.info
	ls := hs.languageStatusLocked()
	hs.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	o := s.statusObj("sessionStatus", reason, &info, counts, s.producedLanguages(ctx, hs.id))
	o["languageStatus"] = ls
	sp.send(o)
}

func newLanguage(prev, cur pentecost.PresenceCounts) bool {
	for l, n := range cur.ByLanguage {
		if n > 0 && prev.ByLanguage[l] == 0 {
			return true
		}
	}
	return false
}

func changedMoreThan10(prev, cur int) bool {
	d := cur - prev
	if d < 0 {
		d = -d
	}
	return d*10 > prev
}

// periodicStatus sends every local speaker its status every StatusInterval.
func (s *Server) periodicStatus(ctx context.Context, now time.Time) {
	if s.StatusInterval <= 0 {
		return
	}
	for _, c := range s.hub.allConns() {
		if c.role != roleSpeaker || !c.joined.Load() || c.session == nil || c.isClosing() {
			continue
		}
		if now.Sub(c.lastStatus) < s.StatusInterval {
			continue
		}
		c.lastStatus = now
		c.session.mu.Lock()
		current := c.session.speaker == c
		c.session.mu.Unlock()
		if current {
			s.sendStatus(ctx, c, "sessionStatus", "periodic")
		}
	}
}
