package pentecost

import (
	"context"
	"sort"
)

// LiveSession is a session that has not ended as an administrator sees it:
// whose it is, who listens in which language, and which translations
// workers produce for it now.
type LiveSession struct {
	Session *Session
	// Listeners are its live listener connections on every node.
	Listeners PresenceCounts
	// Produced are the languages some worker produces for it now, sorted.
	Produced []string
	// SpeakerConnected reports whether a speaker connection of it is live
	// on any node.
	SpeakerConnected bool
}

// LiveSessionService lists every speaker's live sessions for the admin
// API. The HTTP API finds it on its SessionService when that implements it
// (the real-time server's NotifyingSessions does), since the listeners and
// workers come from presence, which the API does not hold itself.
type LiveSessionService interface {
	// LiveSessions returns at most limit sessions that have not ended,
	// newest first, and how many there are.
	// Errors: EUNAVAILABLE.
	LiveSessions(ctx context.Context, limit int) ([]*LiveSession, int, error)
}

// FindLiveSessions returns at most limit of every speaker's active and
// paused sessions, newest first, and how many there are.
// Errors: EUNAVAILABLE.
func FindLiveSessions(ctx context.Context, svc SessionService, limit int) ([]*Session, int, error) {
	var out []*Session
	total := 0
	for _, st := range []SessionStatus{SessionActive, SessionPaused} {
		status := st
		found, n, err := svc.FindSessions(ctx, SessionFilter{Status: &status, Limit: limit})
		if err != nil {
			return nil, 0, err
		}
		out = append(out, found...)
		total += n
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, total, nil
}
