package redis

import (
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/pentecost/pentecost"
)

// The rules below are the SessionService contract as the sqlite package
// implements it; the shared suite in storetest holds both to them. They
// belong in the root package once both stores can use them from there.

// MaxSpeakerStateLen bounds the free text of BroadcastState.SpeakerState, in bytes.
const MaxSpeakerStateLen = 64

// newSession validates what CreateSession reads from sess and returns the
// session to store, without its ID.
func newSession(sess *pentecost.Session, owner string, now time.Time, maxIdle time.Duration) (*pentecost.Session, error) {
	lang, err := pentecost.ValidateLanguage(sess.SourceLanguage)
	if err != nil {
		return nil, err
	}
	tier := sess.QualityTier
	if tier == "" {
		tier = pentecost.QualityStandard
	} else if !tier.Valid() {
		return nil, fieldError("qualityTier", "Quality tier must be standard or premium.")
	}
	format := sess.AudioFormat
	if format == "" {
		format = pentecost.AudioPCM16
	} else if format != pentecost.AudioPCM16 {
		return nil, fieldError("audioFormat", "Audio format is not supported.")
	}
	state := pentecost.DefaultBroadcastState()
	state.ChangedAt = now
	return &pentecost.Session{
		OwnerID:        owner,
		SourceLanguage: lang,
		QualityTier:    tier,
		AudioFormat:    format,
		Status:         pentecost.SessionActive,
		BroadcastState: state,
		CreatedAt:      now,
		LastActiveAt:   now,
		ExpiresAt:      now.Add(maxIdle),
	}, nil
}

// applyUpdate validates upd and applies it to sess. It reports whether the
// update asks for the session to end. Status and the broadcast state's
// pause always agree afterwards.
func applyUpdate(sess *pentecost.Session, upd pentecost.SessionUpdate, now time.Time) (end bool, err error) {
	if upd.SourceLanguage != nil {
		lang, err := pentecost.ValidateLanguage(*upd.SourceLanguage)
		if err != nil {
			return false, err
		}
		sess.SourceLanguage = lang
	}
	if upd.QualityTier != nil {
		if !upd.QualityTier.Valid() {
			return false, fieldError("qualityTier", "Quality tier must be standard or premium.")
		}
		sess.QualityTier = *upd.QualityTier
	}

	state := sess.BroadcastState
	var pausedSet *bool
	if b := upd.BroadcastState; b != nil {
		pausedSet = b.Paused
		if b.Paused != nil {
			state.Paused = *b.Paused
		}
		if b.Muted != nil {
			state.Muted = *b.Muted
		}
		if b.Volume != nil {
			v := *b.Volume
			if math.IsNaN(v) || v < 0 || v > 1 {
				return false, fieldError("broadcastState.volume", "Volume must be between 0.0 and 1.0.")
			}
			state.Volume = v
		}
		if b.SpeakerState != nil {
			if len(*b.SpeakerState) > MaxSpeakerStateLen || !utf8.ValidString(*b.SpeakerState) {
				return false, fieldError("broadcastState.speakerState", fmt.Sprintf("Speaker state must be UTF-8 text of at most %d bytes.", MaxSpeakerStateLen))
			}
			state.SpeakerState = *b.SpeakerState
		}
	}
	if upd.Status != nil {
		switch st := *upd.Status; st {
		case pentecost.SessionActive, pentecost.SessionPaused:
			paused := st == pentecost.SessionPaused
			if pausedSet != nil && *pausedSet != paused {
				return false, fieldError("status", "Status and broadcastState.isPaused disagree.")
			}
			state.Paused = paused
		case pentecost.SessionEnded:
			end = true
		default:
			return false, fieldError("status", "Status must be active, paused or ended.")
		}
	}

	sess.Status = pentecost.SessionActive
	if state.Paused {
		sess.Status = pentecost.SessionPaused
	}
	old := sess.BroadcastState
	if state.Paused != old.Paused || state.Muted != old.Muted || state.Volume != old.Volume || state.SpeakerState != old.SpeakerState {
		state.ChangedAt = now
	}
	sess.BroadcastState = state
	return end, nil
}

// endSession marks sess ended at now; listeners are gone.
func endSession(sess *pentecost.Session, now time.Time) {
	sess.Status = pentecost.SessionEnded
	sess.EndedAt = now
	sess.ListenerCount = 0
}

// asOf reports sess as it stands at now: a live session past its expiry
// is ended at its ExpiresAt, as ExpireSessions will store it.
func asOf(sess *pentecost.Session, now time.Time) *pentecost.Session {
	if sess.Status != pentecost.SessionEnded && !now.Before(sess.ExpiresAt) {
		endSession(sess, sess.ExpiresAt)
	}
	return sess
}

func notFound() error {
	return pentecost.Errorf(pentecost.ESESSIONNOTFOUND, "Session not found.")
}

func ended() error {
	return pentecost.Errorf(pentecost.ESESSIONENDED, "Session has ended.")
}
