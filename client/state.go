package client

import "time"

// stateFilter passes each broadcast-state change on once. During a refresh
// both connections may report the same change, or the old one may be
// closed before reporting it; the filter drops repeats, and resync turns a
// new connection's state into the events that were missed.
type stateFilter struct {
	have bool
	st   BroadcastState
}

// changes reports whether a state message changes what the client knows,
// recording it if so. Messages that are not state changes pass.
func (f *stateFilter) changes(m *wireMsg) bool {
	st := f.st
	switch m.Type {
	case EventSessionPaused, EventSessionResumed:
		st.Paused = m.Type == EventSessionPaused
	case EventBroadcastMuted, EventBroadcastUnmuted:
		st.Muted = m.Type == EventBroadcastMuted
	case EventVolumeChanged:
		st.Volume = m.VolumeLevel
	case EventSpeakerStateChanged:
		st.SpeakerState = m.State
	default:
		return true
	}
	if f.have && st == f.st {
		return false
	}
	if m.BroadcastState != nil {
		st = *m.BroadcastState
	}
	f.have, f.st = true, st
	return true
}

// resync records the state a (new) connection reported and returns events
// for the changes the client had not heard of.
func (f *stateFilter) resync(st *BroadcastState, sessionID string) []Event {
	if st == nil {
		return nil
	}
	old, had := f.st, f.have
	f.have, f.st = true, *st
	if !had {
		return nil
	}
	var out []Event
	add := func(typ string) {
		s := *st
		out = append(out, Event{Type: typ, SessionID: sessionID, Timestamp: time.Now(), BroadcastState: &s,
			Volume: s.Volume, State: s.SpeakerState})
	}
	if old.Paused != st.Paused {
		add(map[bool]string{true: EventSessionPaused, false: EventSessionResumed}[st.Paused])
	}
	if old.Muted != st.Muted {
		add(map[bool]string{true: EventBroadcastMuted, false: EventBroadcastUnmuted}[st.Muted])
	}
	if old.Volume != st.Volume {
		add(EventVolumeChanged)
	}
	if old.SpeakerState != st.SpeakerState {
		add(EventSpeakerStateChanged)
	}
	return out
}
