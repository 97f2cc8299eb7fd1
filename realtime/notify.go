package realtime

import (
	"context"
	"sort"

	"github.com/pentecost/pentecost"
)

// SessionExpired tells every connection of a session that ended because no
// speaker used it for the idle maximum, and closes them with 1000.
func (s *Server) SessionExpired(ctx context.Context, sess *pentecost.Session) error {
	return s.endSession(ctx, sess.ID, "expired")
}

// NotifyingSessions wraps the session service that the HTTP API uses, so
// that a PATCH or DELETE reaches listeners as the same messages the
// speaker's own controls produce. The realtime Server itself must be given
// the unwrapped service: it announces its own changes.
func (s *Server) NotifyingSessions(svc pentecost.SessionService) pentecost.SessionService {
	return &notifyingSessions{SessionService: svc, rt: s}
}

type notifyingSessions struct {
	pentecost.SessionService
	rt *Server
}

func (n *notifyingSessions) UpdateSession(ctx context.Context, id string, upd pentecost.SessionUpdate) (*pentecost.Session, error) {
	sess, err := n.SessionService.UpdateSession(ctx, id, upd)
	if err != nil {
		return nil, err
	}
	// The change is stored; failing to announce it must not fail the
	// request. Clients see the state on their next join or status.
	if err := n.rt.SessionUpdated(ctx, sess); err != nil {
		n.rt.Logger.Warn("announce session update", logSession, sess.ID, logError, err)
	}
	return sess, nil
}

func (n *notifyingSessions) EndSession(ctx context.Context, id string) (*pentecost.Session, error) {
	sess, err := n.SessionService.EndSession(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := n.rt.SessionEnded(ctx, sess); err != nil {
		n.rt.Logger.Warn("announce session end", logSession, sess.ID, logError, err)
	}
	return sess, nil
}

// SessionLanguages implements pentecost.SessionLanguageService for the
// HTTP API's GET /sessions/{id}/languages: the source, the languages
// workers produce for the session now (live) and those connected workers
// offer for its source language (available), from the shared presence.
// An ended session offers only its source.
func (n *notifyingSessions) SessionLanguages(ctx context.Context, id string) (*pentecost.SessionLanguages, error) {
	return n.rt.SessionLanguages(ctx, n.SessionService, id)
}

// SessionLanguages answers for a session found in svc; see
// NotifyingSessions. Errors: EINVALIDSESSIONID, ESESSIONNOTFOUND, EUNAVAILABLE.
func (s *Server) SessionLanguages(ctx context.Context, svc pentecost.SessionService, id string) (*pentecost.SessionLanguages, error) {
	sess, err := svc.FindSessionByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if sess.Status == pentecost.SessionEnded {
		return pentecost.BuildSessionLanguages(sess.ID, sess.SourceLanguage, nil, nil), nil
	}
	produced, err := s.Presence.ProducedLanguages(ctx, sess.ID)
	if err != nil {
		return nil, err
	}
	offered, err := s.Presence.OfferedLanguages(ctx, sess.SourceLanguage)
	if err != nil {
		return nil, err
	}
	return pentecost.BuildSessionLanguages(sess.ID, sess.SourceLanguage, produced, offered), nil
}

// Capabilities implements pentecost.CapabilityService for GET
// /capabilities: see Server.Capabilities.
func (n *notifyingSessions) Capabilities(ctx context.Context) (*pentecost.Capabilities, error) {
	return n.rt.Capabilities(ctx)
}

// Capabilities returns what the workers connected to any node offer: their
// quality tiers (standard always) and target languages by source.
// Errors: EUNAVAILABLE.
func (s *Server) Capabilities(ctx context.Context) (*pentecost.Capabilities, error) {
	all, err := s.Presence.AllOffered(ctx)
	if err != nil {
		return nil, err
	}
	return pentecost.CapabilitiesOf(all), nil
}

var (
	_ pentecost.SessionService         = (*notifyingSessions)(nil)
	_ pentecost.SessionLanguageService = (*notifyingSessions)(nil)
	_ pentecost.CapabilityService      = (*notifyingSessions)(nil)
	_ pentecost.LiveSessionService     = (*notifyingSessions)(nil)
)

// LiveSessions implements pentecost.LiveSessionService for the admin API:
// see Server.LiveSessions.
func (n *notifyingSessions) LiveSessions(ctx context.Context, limit int) ([]*pentecost.LiveSession, int, error) {
	return n.rt.LiveSessions(ctx, n.SessionService, limit)
}

// LiveSessions returns at most limit sessions of svc that have not ended,
// newest first, with their listeners by language, the languages workers
// produce for them and whether their speaker is connected, from the shared
// presence; and how many there are. Errors: EUNAVAILABLE.
func (s *Server) LiveSessions(ctx context.Context, svc pentecost.SessionService, limit int) ([]*pentecost.LiveSession, int, error) {
	sessions, total, err := pentecost.FindLiveSessions(ctx, svc, limit)
	if err != nil {
		return nil, 0, err
	}
	// One read for every session's listeners; sessions without any are
	// not in it.
	counts, err := s.Presence.Sessions(ctx)
	if err != nil {
		return nil, 0, err
	}
	out := make([]*pentecost.LiveSession, 0, len(sessions))
	for _, sess := range sessions {
		produced, err := s.Presence.ProducedLanguages(ctx, sess.ID)
		if err != nil {
			return nil, 0, err
		}
		speaker, err := s.Presence.SpeakerConnected(ctx, sess.ID)
		if err != nil {
			return nil, 0, err
		}
		c := counts[sess.ID]
		if c.ByLanguage == nil {
			c.ByLanguage = map[string]int{}
		}
		sort.Strings(produced)
		out = append(out, &pentecost.LiveSession{Session: sess, Listeners: c, Produced: produced, SpeakerConnected: speaker})
	}
	return out, total, nil
}
