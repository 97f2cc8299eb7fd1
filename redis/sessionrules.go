package redis

import "github.com/pentecost/pentecost"

// The session rules themselves (validation, updates, expiry) are the root
// package's (pentecost.NewSession, Session.Apply, Session.AsOf), shared
// with the sqlite store.

// MaxSpeakerStateLen bounds the free text of BroadcastState.SpeakerState, in bytes.
const MaxSpeakerStateLen = pentecost.MaxSpeakerStateLen

func notFound() error {
	return pentecost.Errorf(pentecost.ESESSIONNOTFOUND, "Session not found.")
}

func ended() error {
	return pentecost.Errorf(pentecost.ESESSIONENDED, "Session has ended.")
}
