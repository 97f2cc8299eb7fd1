package realtime_test

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
)

// publishAt publishes audio chunk i (or, with text, a caption) to the
// stream through the server's real in-memory broker, received by "the
// server" at t: how a frame delayed by a broker outage reaches the hub.
func publishAt(t *testing.T, e *env, key pentecost.StreamKey, f *pentecost.Frame, at time.Time) uint64 {
	t.Helper()
	f.Time = at
	if err := e.Broker.Publish(context.Background(), key, f); err != nil {
		t.Fatal(err)
	}
	return f.Seq
}

func audioFrame(i int) *pentecost.Frame {
	return &pentecost.Frame{Kind: pentecost.FrameAudio, Data: audio(i, 640)}
}

// staleSkipped reads pentecost_stale_frames_skipped_total{delivery}.
func (e *env) staleSkipped(delivery string) float64 {
	e.t.Helper()
	mfs, err := e.Registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pentecost_stale_frames_skipped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "delivery" && l.GetValue() == delivery {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	e.t.Fatalf("no pentecost_stale_frames_skipped_total{delivery=%q}", delivery)
	return 0
}

// nextStream returns the next audioData, audioSkipped, caption or binary
// message, skipping the rest (state, pings).
func (c *client) nextStream() msg {
	c.t.Helper()
	for {
		m := c.next()
		switch {
		case m.op == ws.OpBinary, m.typ() == "audioData", m.typ() == "audioSkipped", m.typ() == "caption":
			return m
		}
	}
}

// seqOf returns the sequence number of an audioData, caption or binary frame.
func seqOf(t *testing.T, m msg) uint64 {
	t.Helper()
	if m.op == ws.OpBinary {
		_, seq, _, _, err := realtime.DecodeBinaryAudio(m.data)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	n, ok := m.m["sequenceNumber"].(float64)
	if !ok {
		t.Fatalf("no sequenceNumber in %v", m.m)
	}
	return uint64(n)
}

// expectAudio fails unless the next stream message is audio number seq.
func expectAudio(t *testing.T, c *client, who string, seq uint64) {
	t.Helper()
	m := c.nextStream()
	if (m.op != ws.OpBinary && m.typ() != "audioData") || seqOf(t, m) != seq {
		t.Fatalf("%s: got %s %v, want audio %d", who, m.typ(), m.m, seq)
	}
}

// expectSkipped fails unless the next stream message is audioSkipped of
// from..to holding n frames.
func expectSkipped(t *testing.T, c *client, who string, from, to uint64, n int, epoch string) {
	t.Helper()
	m := c.nextStream()
	if m.typ() != "audioSkipped" {
		t.Fatalf("%s: got %s %v, want audioSkipped", who, m.typ(), m.m)
	}
	want := map[string]any{"fromSequenceNumber": float64(from), "toSequenceNumber": float64(to), "frames": float64(n),
		"reason": "stale", "language": "en", "epoch": epoch}
	for k, v := range want {
		if m.m[k] != v {
			t.Fatalf("%s: audioSkipped %s = %v, want %v (%v)", who, k, m.m[k], v, m.m)
		}
	}
}

// TestStaleAudio_Live feeds the hub, through the broker, a backlog as a
// broker outage leaves it: audio received by the server seconds ago
// arriving now. Listeners skip it and hear what follows live, told by one
// audioSkipped before the first fresh frame; captions in the backlog still
// arrive; translated audio whose source speech is old but which the
// server received just now is not stale; the metric counts each skipped
// frame once.
func TestStaleAudio_Live(t *testing.T) {
	log := &accountLog{}
	e := newEnv(t, func(s *realtime.Server) { s.Logger = slog.New(log) })
	sess := e.createSession("alice")
	key := pentecost.StreamKey{SessionID: sess.ID, Language: "en"}
	q := "sessionId=" + sess.ID + "&targetLanguage=en"
	j := e.dial(q)
	joined := j.expect("sessionJoined")
	epoch, _ := joined.m["epoch"].(string)
	b := e.dial(q + "&audioFormat=binary")
	b.expect("sessionJoined")
	p := e.dial(q)
	p.expect("sessionJoined")
	p.send(map[string]any{"action": "pausePlayback"})
	p.expect("playbackPaused")

	now := time.Now()
	old := now.Add(-realtime.DefaultMaxFrameAge - 3*time.Second)
	first := publishAt(t, e, key, audioFrame(1), now)
	for i := 2; i <= 4; i++ {
		publishAt(t, e, key, audioFrame(i), old)
	}
	caption := publishAt(t, e, key, &pentecost.Frame{Kind: pentecost.FrameCaption, Text: "late but kept", Final: true}, old)
	last := publishAt(t, e, key, audioFrame(6), old)
	fresh := publishAt(t, e, key, audioFrame(7), time.Now())
	// Stale a little past the bound: skipped too, in a run of its own.
	edge := publishAt(t, e, key, audioFrame(8), time.Now().Add(-realtime.DefaultMaxFrameAge-100*time.Millisecond))
	// A worker's translation of speech 8 s ago, published just now.
	translated := publishAt(t, e, key, &pentecost.Frame{Kind: pentecost.FrameAudio, Data: audio(9, 640),
		SourceTime: time.Now().Add(-8 * time.Second)}, time.Now())

	for _, c := range []struct {
		name string
		c    *client
	}{{"JSON listener", j}, {"binary listener", b}} {
		expectAudio(t, c.c, c.name, first)
		if m := c.c.nextStream(); m.typ() != "caption" || seqOf(t, m) != caption {
			t.Fatalf("%s: got %s %v, want the caption %d", c.name, m.typ(), m.m, caption)
		}
		expectSkipped(t, c.c, c.name, first+1, last, 4, epoch)
		expectAudio(t, c.c, c.name, fresh)
		expectSkipped(t, c.c, c.name, edge, edge, 1, epoch)
		expectAudio(t, c.c, c.name, translated)
	}
	// The paused listener was not going to hear the audio: nothing to
	// report. Its caption is the only stream message it gets.
	if m := p.nextStream(); m.typ() != "caption" {
		t.Fatalf("paused listener: got %s %v, want the caption", m.typ(), m.m)
	}
	p.send(map[string]any{"action": "getSessionStatus"}) // answered with an error, after anything queued before
	for m := p.next(); m.typ() != "error"; m = p.next() {
		if m.typ() == "audioSkipped" || m.op == ws.OpBinary || m.typ() == "audioData" {
			t.Fatalf("paused listener got %s %v", m.typ(), m.m)
		}
	}
	if got := e.staleSkipped("live"); got != 5 {
		t.Fatalf("live skips counted %v, want 5 (each frame once, whatever the listeners)", got)
	}
	if got := e.staleSkipped("resume"); got != 0 {
		t.Fatalf("resume skips counted %v, want 0", got)
	}
	// Two runs of skips within a minute: one warning, for the operator
	// whose node's clock may run ahead.
	if n := log.count("WARN skipping stale audio"); n != 1 {
		t.Fatalf("%d warnings of stale audio logged, want 1", n)
	}
}

// TestStaleAudio_Resume: a listener coming back within MaxFrameAge gets
// every frame it missed replayed; one coming back later gets only the
// frames that are still recent, after an audioSkipped for the rest.
func TestStaleAudio_Resume(t *testing.T) {
	// A bound well above the test's own running time, so that a slow
	// machine cannot age the recent frames past it.
	const bound = 20 * time.Second
	e := newEnv(t, func(s *realtime.Server) { s.MaxFrameAge = bound })
	e.Broker.HistoryTTL = time.Hour
	sess := e.createSession("alice")
	key := pentecost.StreamKey{SessionID: sess.ID, Language: "en"}
	q := "sessionId=" + sess.ID + "&targetLanguage=en"
	l := e.dial(q)
	epoch, _ := l.expect("sessionJoined").m["epoch"].(string)

	// The history: three frames received past the bound, then three
	// received well within it.
	old := time.Now().Add(-bound - time.Minute)
	for i := 1; i <= 3; i++ {
		publishAt(t, e, key, audioFrame(i), old)
	}
	for i := 4; i <= 6; i++ {
		publishAt(t, e, key, audioFrame(i), time.Now().Add(-bound/4))
	}
	resume := func(last int) *client {
		c := e.dial(q + "&epoch=" + epoch + "&lastSequenceNumber=" + strconv.Itoa(last))
		c.expect("sessionJoined")
		return c
	}

	t.Run("WithinBound", func(t *testing.T) {
		c := resume(4)
		expectAudio(t, c, "resumed after 4", 5)
		expectAudio(t, c, "resumed after 4", 6)
	})
	t.Run("PastBound", func(t *testing.T) {
		c := resume(1)
		expectSkipped(t, c, "resumed after 1", 2, 3, 2, epoch)
		for seq := uint64(4); seq <= 6; seq++ {
			expectAudio(t, c, "resumed after 1", seq)
		}
		if got := e.staleSkipped("resume"); got != 2 {
			t.Fatalf("resume skips counted %v, want 2", got)
		}
	})
	t.Run("OnlyStale", func(t *testing.T) {
		// All it missed is stale: it is told at once, not at the next
		// audio, which may be a while.
		sess := e.createSession("bob")
		key := pentecost.StreamKey{SessionID: sess.ID, Language: "en"}
		q := "sessionId=" + sess.ID + "&targetLanguage=en"
		first := e.dial(q)
		epoch, _ := first.expect("sessionJoined").m["epoch"].(string)
		for i := 1; i <= 3; i++ {
			publishAt(t, e, key, audioFrame(i), old)
		}
		c := e.dial(q + "&epoch=" + epoch + "&lastSequenceNumber=0")
		c.expect("sessionJoined")
		expectSkipped(t, c, "resumed after 0", 1, 3, 3, epoch)
		seq := publishAt(t, e, key, audioFrame(4), time.Now())
		expectAudio(t, c, "resumed after 0", seq)
		if got := e.staleSkipped("resume"); got != 2+3 {
			t.Fatalf("resume skips counted %v, want 5", got)
		}
	})
}

// TestStaleAudio_Disabled: MaxFrameAge 0 sends audio however old.
func TestStaleAudio_Disabled(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) { s.MaxFrameAge = 0 })
	sess := e.createSession("alice")
	key := pentecost.StreamKey{SessionID: sess.ID, Language: "en"}
	l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
	l.expect("sessionJoined")
	seq := publishAt(t, e, key, audioFrame(1), time.Now().Add(-time.Minute))
	expectAudio(t, l, "listener", seq)
	if got := e.staleSkipped("live"); got != 0 {
		t.Fatalf("live skips counted %v with MaxFrameAge 0", got)
	}
}
