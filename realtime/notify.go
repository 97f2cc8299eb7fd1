package realtime

import (
	"context"

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

var _ pentecost.SessionService = (*notifyingSessions)(nil)
