package storetest

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
)

// BrokerConfig configures a Broker under test; the factory copies each
// field into the implementation's field of the same name.
type BrokerConfig struct {
	HistorySize int
	HistoryTTL  time.Duration
}

// BrokerFactory returns a fresh Broker, with no stream, using clock.
type BrokerFactory func(t *testing.T, cfg BrokerConfig, clock *Clock) pentecost.Broker

// deliveryTimeout bounds the wait for a frame a shared broker delivers
// asynchronously.
const deliveryTimeout = 10 * time.Second

// Collector records the frames a subscription receives, for tests of
// brokers that deliver on their own goroutines.
type Collector struct {
	mu     sync.Mutex
	frames []*pentecost.Frame
	signal chan struct{}
}

// NewCollector returns an empty collector.
func NewCollector() *Collector { return &Collector{signal: make(chan struct{}, 1)} }

// Handle is the FrameHandler that records f.
func (c *Collector) Handle(f *pentecost.Frame) {
	c.mu.Lock()
	c.frames = append(c.frames, f)
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// Frames returns what was received so far.
func (c *Collector) Frames() []*pentecost.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*pentecost.Frame(nil), c.frames...)
}

// WaitFor waits until n frames have arrived and returns them, failing the
// test after a deadline.
func (c *Collector) WaitFor(tb testing.TB, n int) []*pentecost.Frame {
	tb.Helper()
	deadline := time.NewTimer(deliveryTimeout)
	defer deadline.Stop()
	for {
		if got := c.Frames(); len(got) >= n {
			return got
		}
		select {
		case <-c.signal:
		case <-deadline.C:
			tb.Fatalf("received %d frames within %v, want %d", len(c.Frames()), deliveryTimeout, n)
		}
	}
}

// WaitForText waits until a caption with text arrives and returns every
// frame received up to it.
func (c *Collector) WaitForText(tb testing.TB, text string) []*pentecost.Frame {
	tb.Helper()
	deadline := time.NewTimer(deliveryTimeout)
	defer deadline.Stop()
	for {
		for i, f := range c.Frames() {
			if f.Text == text {
				return c.Frames()[:i+1]
			}
		}
		select {
		case <-c.signal:
		case <-deadline.C:
			tb.Fatalf("caption %q not received within %v", text, deliveryTimeout)
		}
	}
}

// WantSeqs fails unless frames are numbered exactly want, in one epoch.
func WantSeqs(tb testing.TB, frames []*pentecost.Frame, want ...uint64) {
	tb.Helper()
	got := make([]uint64, len(frames))
	for i, f := range frames {
		got[i] = f.Seq
		if f.Epoch == "" || f.Epoch != frames[0].Epoch {
			tb.Fatalf("frame %d has epoch %q, first %q", f.Seq, f.Epoch, frames[0].Epoch)
		}
	}
	if len(want) == 0 {
		want = []uint64{}
	}
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("seqs = %v, want %v", got, want)
	}
}

// SeqRange returns from, from+1, …, to.
func SeqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func audio(b byte) *pentecost.Frame {
	return &pentecost.Frame{Kind: pentecost.FrameAudio, Data: []byte{b, b, b}}
}

func marker(text string) *pentecost.Frame {
	return &pentecost.Frame{Kind: pentecost.FrameCaption, Text: text}
}

func mustPublish(tb testing.TB, b pentecost.Broker, key pentecost.StreamKey, f *pentecost.Frame) *pentecost.Frame {
	tb.Helper()
	if err := b.Publish(context.Background(), key, f); err != nil {
		tb.Fatal(err)
	}
	return f
}

func mustSubscribe(tb testing.TB, b pentecost.Broker, key pentecost.StreamKey, h pentecost.FrameHandler) func() {
	tb.Helper()
	unsub, err := b.Subscribe(context.Background(), key, h)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(unsub)
	return unsub
}

// RunBrokerTests runs the Broker suite against fresh brokers from newBroker.
func RunBrokerTests(t *testing.T, newBroker BrokerFactory) {
	ctx := context.Background()
	key := pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "es"}
	defaults := BrokerConfig{HistorySize: 500, HistoryTTL: 10 * time.Second}

	t.Run("OrderAndHistory", func(t *testing.T) {
		b := newBroker(t, BrokerConfig{HistorySize: 5, HistoryTTL: 10 * time.Second}, NewClock())
		c := NewCollector()
		unsub := mustSubscribe(t, b, key, c.Handle)
		var published []*pentecost.Frame
		for i := range 8 {
			published = append(published, mustPublish(t, b, key, audio(byte(i))))
		}
		got := c.WaitFor(t, 8)
		WantSeqs(t, got, SeqRange(1, 8)...)
		for i, f := range got {
			if f.Seq != published[i].Seq || f.Epoch != published[i].Epoch || !reflect.DeepEqual(f.Data, []byte{byte(i), byte(i), byte(i)}) {
				t.Fatalf("frame %d = %+v, published %+v", i, f, published[i])
			}
		}
		unsub()
		unsub() // idempotent
		mustPublish(t, b, key, audio(9))
		frames, pos, err := b.History(ctx, key, 6)
		if err != nil {
			t.Fatal(err)
		}
		if pos.First != 5 || pos.Last != 9 || pos.Epoch != got[0].Epoch {
			t.Fatalf("pos = %+v, want 5…9 in epoch %s", pos, got[0].Epoch)
		}
		WantSeqs(t, frames, 7, 8, 9)
	})

	t.Run("UnsubscribeStopsDelivery", func(t *testing.T) {
		b := newBroker(t, defaults, NewClock())
		first, second := NewCollector(), NewCollector()
		unsub := mustSubscribe(t, b, key, first.Handle)
		mustSubscribe(t, b, key, second.Handle)
		mustPublish(t, b, key, marker("one"))
		first.WaitForText(t, "one")
		unsub()
		mustPublish(t, b, key, audio(1))
		mustPublish(t, b, key, marker("two"))
		WantSeqs(t, second.WaitForText(t, "two"), 1, 2, 3)
		WantSeqs(t, first.Frames(), 1)
	})

	t.Run("FramesRoundTrip", func(t *testing.T) {
		clock := NewClock()
		b := newBroker(t, defaults, clock)
		ctl := pentecost.StreamKey{SessionID: key.SessionID, Language: pentecost.ControlLanguage}
		c, cc := NewCollector(), NewCollector()
		mustSubscribe(t, b, key, c.Handle)
		mustSubscribe(t, b, ctl, cc.Handle)
		at := clock.Now().Add(-987654321 * time.Nanosecond) // within the history's age

		frames := []*pentecost.Frame{
			{Kind: pentecost.FrameAudio, Data: make([]byte, pentecost.MaxAudioChunk), Time: at},
			{Kind: pentecost.FrameCaption, Language: "es", Text: "Buenos días ☀", Final: true},
			{Kind: pentecost.FrameAudio, Data: []byte{0, ' ', '\n', 255}},
			// A worker's translated audio carries its speech's capture time.
			{Kind: pentecost.FrameAudio, Data: []byte{1, 2, 3}, SourceTime: at.Add(-4321 * time.Millisecond)},
		}
		frames[0].Data[7] = 42
		for _, f := range frames {
			mustPublish(t, b, key, f)
		}
		event := &pentecost.Frame{Kind: pentecost.FrameEvent, Event: &pentecost.SessionEvent{
			Type: pentecost.EventSessionUpdated, Status: pentecost.SessionPaused,
			BroadcastState: pentecost.BroadcastState{Paused: true, Muted: true, Volume: 0.25, SpeakerState: "praying", ChangedAt: at},
			Reason:         "ended", Language: "fr", Grace: 90 * time.Second,
		}}
		mustPublish(t, b, ctl, event)

		if frames[0].Time != at || !frames[1].Time.Equal(clock.Now()) || frames[1].Language != "es" || frames[2].Language != "es" {
			t.Fatalf("Publish set time %v / %v, language %q", frames[0].Time, frames[1].Time, frames[2].Language)
		}
		if event.Language != pentecost.ControlLanguage || event.Seq != 1 {
			t.Fatalf("event frame = %+v", event)
		}
		history, _, err := b.History(ctx, key, 0)
		if err != nil {
			t.Fatal(err)
		}
		ctlHistory, _, err := b.History(ctx, ctl, 0)
		if err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string][]*pentecost.Frame{
			"delivered": c.WaitFor(t, len(frames)), "history": history,
			"delivered event": cc.WaitFor(t, 1), "event history": ctlHistory,
		} {
			want := frames
			if len(got) == 1 {
				want = []*pentecost.Frame{event}
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %d frames, want %d", name, len(got), len(want))
			}
			for i := range want {
				wantFrame(t, got[i], want[i])
			}
		}
	})

	t.Run("HistoryTTL", func(t *testing.T) {
		clock := NewClock()
		b := newBroker(t, defaults, clock)
		mustPublish(t, b, key, audio(1))
		clock.Add(11 * time.Second)
		mustPublish(t, b, key, audio(2))
		frames, pos, err := b.History(ctx, key, 0)
		if err != nil {
			t.Fatal(err)
		}
		if pos.First != 2 || pos.Last != 2 {
			t.Fatalf("pos = %+v, want 2…2", pos)
		}
		WantSeqs(t, frames, 2)
		// A quiet stream's history ages too.
		clock.Add(11 * time.Second)
		frames, pos, _ = b.History(ctx, key, 0)
		if len(frames) != 0 || pos.First != 0 || pos.Last != 2 {
			t.Fatalf("history = %d frames, pos %+v; want none, last 2", len(frames), pos)
		}
	})

	t.Run("Position", func(t *testing.T) {
		b := newBroker(t, defaults, NewClock())
		pos, err := b.Position(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if pos.Epoch == "" || pos.First != 0 || pos.Last != 0 {
			t.Fatalf("empty stream pos = %+v", pos)
		}
		f := mustPublish(t, b, key, audio(1))
		mustPublish(t, b, key, audio(2))
		again, err := b.Position(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if f.Epoch != pos.Epoch || again != (pentecost.StreamPosition{Epoch: pos.Epoch, First: 1, Last: 2}) {
			t.Fatalf("pos = %+v after publishing in epoch %s, first seen %+v", again, f.Epoch, pos)
		}
		frames, _, _ := b.History(ctx, key, 2)
		if len(frames) != 0 {
			t.Fatalf("History(last) = %d frames, want none", len(frames))
		}
		frames, after, _ := b.History(ctx, key, 100)
		if len(frames) != 0 || after.Last != 2 {
			t.Fatalf("History(past last) = %d frames, pos %+v", len(frames), after)
		}
	})

	t.Run("EpochPerBroker", func(t *testing.T) {
		p1, _ := newBroker(t, defaults, NewClock()).Position(ctx, key)
		p2, _ := newBroker(t, defaults, NewClock()).Position(ctx, key)
		if p1.Epoch == "" || p1.Epoch == p2.Epoch {
			t.Fatalf("two histories have epochs %q and %q", p1.Epoch, p2.Epoch)
		}
	})

	t.Run("StreamsIndependent", func(t *testing.T) {
		b := newBroker(t, defaults, NewClock())
		en := pentecost.StreamKey{SessionID: key.SessionID, Language: "en"}
		other := pentecost.StreamKey{SessionID: "silver-lamb-100", Language: "es"}
		c := NewCollector()
		mustSubscribe(t, b, key, c.Handle)
		for range 3 {
			mustPublish(t, b, en, audio(1))
			mustPublish(t, b, other, audio(1))
		}
		mustPublish(t, b, key, marker("end"))
		WantSeqs(t, c.WaitForText(t, "end"), 1)
		if pos, _ := b.Position(ctx, en); pos.Last != 3 {
			t.Fatalf("en pos = %+v, want last 3", pos)
		}
	})

	t.Run("ConcurrentPublishers", func(t *testing.T) {
		b := newBroker(t, defaults, NewClock())
		c := NewCollector()
		mustSubscribe(t, b, key, c.Handle)
		const publishers, each = 4, 50
		var wg sync.WaitGroup
		for range publishers {
			wg.Go(func() {
				for range each {
					if err := b.Publish(ctx, key, audio(1)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		WantSeqs(t, c.WaitFor(t, publishers*each), SeqRange(1, publishers*each)...)
		frames, _, _ := b.History(ctx, key, 0)
		WantSeqs(t, frames, SeqRange(1, publishers*each)...)
	})

	t.Run("SubscribeSeesOnlyLaterFrames", func(t *testing.T) {
		b := newBroker(t, defaults, NewClock())
		mustPublish(t, b, key, audio(1))
		mustPublish(t, b, key, audio(2))
		c := NewCollector()
		mustSubscribe(t, b, key, c.Handle)
		mustPublish(t, b, key, marker("after"))
		WantSeqs(t, c.WaitForText(t, "after"), 3)
	})

	t.Run("DropSession", func(t *testing.T) {
		b := newBroker(t, defaults, NewClock())
		en := pentecost.StreamKey{SessionID: key.SessionID, Language: "en"}
		other := pentecost.StreamKey{SessionID: "silver-lamb-100", Language: "es"}
		for _, k := range []pentecost.StreamKey{key, en, other} {
			mustPublish(t, b, k, audio(1))
		}
		if err := b.DropSession(ctx, key.SessionID); err != nil {
			t.Fatal(err)
		}
		for _, k := range []pentecost.StreamKey{key, en} {
			if frames, pos, err := b.History(ctx, k, 0); err != nil || len(frames) != 0 || pos.First != 0 {
				t.Fatalf("%v after drop: %d frames, pos %+v, %v", k, len(frames), pos, err)
			}
		}
		if frames, _, _ := b.History(ctx, other, 0); len(frames) != 1 {
			t.Fatalf("other session's history has %d frames, want 1", len(frames))
		}
	})

	t.Run("ErrValidationField", func(t *testing.T) {
		b := newBroker(t, defaults, NewClock())
		wantCode(t, b.Publish(ctx, pentecost.StreamKey{Language: "es"}, audio(1)), pentecost.EVALIDATIONFIELD)
		wantCode(t, b.Publish(ctx, key, nil), pentecost.EVALIDATIONFIELD)
	})
}

// wantFrame compares what a receiver got with what was published.
func wantFrame(tb testing.TB, got, want *pentecost.Frame) {
	tb.Helper()
	if got.Kind != want.Kind || got.Language != want.Language || got.Seq != want.Seq || got.Epoch != want.Epoch ||
		!got.Time.Equal(want.Time) || !got.SourceTime.Equal(want.SourceTime) ||
		string(got.Data) != string(want.Data) || got.Text != want.Text || got.Final != want.Final {
		tb.Fatalf("frame = %+v, want %+v", got, want)
	}
	if (got.Event == nil) != (want.Event == nil) {
		tb.Fatalf("event = %+v, want %+v", got.Event, want.Event)
	}
	if want.Event != nil {
		g, w := *got.Event, *want.Event
		if !g.BroadcastState.ChangedAt.Equal(w.BroadcastState.ChangedAt) {
			tb.Fatalf("event changed at %v, want %v", g.BroadcastState.ChangedAt, w.BroadcastState.ChangedAt)
		}
		g.BroadcastState.ChangedAt, w.BroadcastState.ChangedAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			tb.Fatalf("event = %+v, want %+v", g, w)
		}
	}
}
