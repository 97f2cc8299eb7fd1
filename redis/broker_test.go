package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/redistest"
	"github.com/pentecost/pentecost/storetest"
)

// twoNodes returns two brokers sharing one Redis and one key prefix, as
// two Pentecost nodes would.
func twoNodes(t *testing.T, srv *redistest.Server) (a, b *redis.Broker) {
	prefix := newPrefix()
	a = MustNewBroker(t, MustOpenDBPrefix(t, srv, nil, prefix))
	b = MustNewBroker(t, MustOpenDBPrefix(t, srv, nil, prefix))
	return a, b
}

func caption(text string) *pentecost.Frame {
	return &pentecost.Frame{Kind: pentecost.FrameCaption, Text: text}
}

func chunk(i int) *pentecost.Frame {
	return &pentecost.Frame{Kind: pentecost.FrameAudio, Data: []byte(fmt.Sprintf("chunk %d", i))}
}

func publish(tb testing.TB, b pentecost.Broker, key pentecost.StreamKey, f *pentecost.Frame) {
	tb.Helper()
	if err := b.Publish(context.Background(), key, f); err != nil {
		tb.Fatal(err)
	}
}

func subscribe(tb testing.TB, b pentecost.Broker, key pentecost.StreamKey) *storetest.Collector {
	tb.Helper()
	c := storetest.NewCollector()
	unsub, err := b.Subscribe(context.Background(), key, c.Handle)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(unsub)
	return c
}

func TestBroker_TwoNodes(t *testing.T) {
	srv := redistest.Start(t)
	es := pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "es"}
	en := pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "en"}

	t.Run("FramesReachOtherNodeOnceInOrder", func(t *testing.T) {
		a, b := twoNodes(t, srv)
		onB, onA := subscribe(t, b, es), subscribe(t, a, es)
		const n = 200
		for i := range n {
			publish(t, a, es, chunk(i))
		}
		publish(t, a, es, caption("end"))
		for name, c := range map[string]*storetest.Collector{"B": onB, "A": onA} {
			got := c.WaitForText(t, "end")
			storetest.WantSeqs(t, got, storetest.SeqRange(1, n+1)...)
			for i, f := range got[:n] {
				if string(f.Data) != fmt.Sprintf("chunk %d", i) {
					t.Fatalf("node %s frame %d = %q", name, f.Seq, f.Data)
				}
			}
		}
	})

	t.Run("PublishersOnBothNodesShareOneNumbering", func(t *testing.T) {
		a, b := twoNodes(t, srv)
		onA, onB := subscribe(t, a, es), subscribe(t, b, es)
		done := make(chan error, 1)
		go func() {
			for i := range 100 {
				if err := b.Publish(context.Background(), es, chunk(i)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		for i := range 100 {
			publish(t, a, es, chunk(i))
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		storetest.WantSeqs(t, onA.WaitFor(t, 200), storetest.SeqRange(1, 200)...)
		storetest.WantSeqs(t, onB.WaitFor(t, 200), storetest.SeqRange(1, 200)...)
	})

	t.Run("NothingForStreamsNotSubscribed", func(t *testing.T) {
		a, b := twoNodes(t, srv)
		onB := subscribe(t, b, es)
		other := pentecost.StreamKey{SessionID: "silver-lamb-100", Language: "es"}
		for i := range 20 {
			publish(t, a, en, chunk(i))
			publish(t, a, other, chunk(i))
		}
		publish(t, a, es, caption("mine"))
		storetest.WantSeqs(t, onB.WaitForText(t, "mine"), 1)
		// And after unsubscribing, the node stops receiving the stream.
		c := storetest.NewCollector()
		unsub, err := b.Subscribe(context.Background(), en, c.Handle)
		if err != nil {
			t.Fatal(err)
		}
		publish(t, a, en, caption("one"))
		c.WaitForText(t, "one")
		unsub()
		publish(t, a, en, caption("two"))
		publish(t, a, es, caption("later"))
		onB.WaitForText(t, "later")
		if got := c.Frames(); len(got) != 1 {
			t.Fatalf("en subscriber got %d frames after unsubscribing, want 1 in all", len(got))
		}
	})

	t.Run("HistoryAndPositionShared", func(t *testing.T) {
		a, b := twoNodes(t, srv)
		for i := range 3 {
			publish(t, a, es, chunk(i))
		}
		frames, pos, err := b.History(context.Background(), es, 1)
		if err != nil {
			t.Fatal(err)
		}
		pa, _ := a.Position(context.Background(), es)
		if pos != pa || pos.First != 1 || pos.Last != 3 {
			t.Fatalf("B sees %+v, A %+v", pos, pa)
		}
		storetest.WantSeqs(t, frames, 2, 3)
	})

	t.Run("DropSessionEverywhere", func(t *testing.T) {
		a, b := twoNodes(t, srv)
		publish(t, a, es, chunk(1))
		before, _ := a.Position(context.Background(), es)
		if err := b.DropSession(context.Background(), es.SessionID); err != nil {
			t.Fatal(err)
		}
		after, _ := a.Position(context.Background(), es)
		if after.Epoch == before.Epoch || after.Last != 0 {
			t.Fatalf("after drop: %+v (before %+v), want a new, empty stream", after, before)
		}
	})
}

// TestBroker_LostMessageFilled has a frame stored but never fanned out, as
// when a Pub/Sub message is lost: the subscriber delivers it from the
// history before the next one.
func TestBroker_LostMessageFilled(t *testing.T) {
	srv := redistest.Start(t)
	a, b := twoNodes(t, srv)
	key := pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "es"}
	onB := subscribe(t, b, key)
	publish(t, a, key, chunk(1))
	for i := 2; i <= 4; i++ {
		if err := redis.PublishLost(context.Background(), a, key, chunk(i)); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, a, key, caption("five"))
	got := onB.WaitForText(t, "five")
	storetest.WantSeqs(t, got, 1, 2, 3, 4, 5)
	if string(got[2].Data) != "chunk 3" {
		t.Fatalf("filled frame 3 = %q", got[2].Data)
	}
}

// TestBroker_Reconnect cuts the subscriber's connection: it reconnects by
// itself and delivers every frame published meanwhile, in order, once.
func TestBroker_Reconnect(t *testing.T) {
	srv := redistest.Start(t)
	a, b := twoNodes(t, srv)
	key := pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "es"}
	onB := subscribe(t, b, key)
	publish(t, a, key, chunk(1))
	onB.WaitFor(t, 1)

	// CLIENT KILL drops every Pub/Sub connection; frames published right
	// after may arrive before or after the subscriber is back.
	if err := a.DB().Client().Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 50; i++ {
		publish(t, a, key, chunk(i))
	}
	publish(t, a, key, caption("end"))
	storetest.WantSeqs(t, onB.WaitForText(t, "end"), storetest.SeqRange(1, 51)...)
}

// TestBroker_RedisRestart restarts Redis empty under two nodes: the
// subscription resumes by itself, and the frames after the restart carry a
// new epoch and are numbered from 1 again, which is the signal that the
// history was lost.
func TestBroker_RedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	a, b := twoNodes(t, srv)
	key := pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "es"}
	onB := subscribe(t, b, key)
	for i := 1; i <= 3; i++ {
		publish(t, a, key, chunk(i))
	}
	before := onB.WaitFor(t, 3)
	storetest.WantSeqs(t, before, 1, 2, 3)

	srv.Restart()
	deadline := time.Now().Add(15 * time.Second)
	for a.Publish(context.Background(), key, caption("after")) != nil {
		if time.Now().After(deadline) {
			t.Fatal("publishing did not recover within 15s")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	got := onB.WaitForText(t, "after")[3:]
	if got[0].Epoch == before[0].Epoch {
		t.Fatalf("epoch %q kept across a lost history", got[0].Epoch)
	}
	storetest.WantSeqs(t, got, storetest.SeqRange(1, uint64(len(got)))...)
	pos, err := b.Position(context.Background(), key)
	if err != nil || pos.Epoch != got[0].Epoch {
		t.Fatalf("position %+v, %v; want the new epoch %q", pos, err, got[0].Epoch)
	}
}

// TestBroker_SubscribeSameStreamTwice has two handlers of one stream on a
// node: both get every frame, and one leaving does not stop the other.
func TestBroker_SubscribeSameStreamTwice(t *testing.T) {
	srv := redistest.Start(t)
	a, b := twoNodes(t, srv)
	key := pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "es"}
	first := subscribe(t, b, key)
	second := storetest.NewCollector()
	unsub, err := b.Subscribe(context.Background(), key, second.Handle)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, a, key, caption("one"))
	second.WaitForText(t, "one")
	unsub()
	publish(t, a, key, caption("two"))
	storetest.WantSeqs(t, first.WaitForText(t, "two"), 1, 2)
	storetest.WantSeqs(t, second.Frames(), 1)
}

// TestBroker_LangsKeptWithStreams checks that publishing keeps the
// session's list of languages as long as the streams it lists, so that
// DropSession finds every stream of a session that ran longer than the
// keys' TTL, and that publishing lists a language the list had lost.
func TestBroker_LangsKeptWithStreams(t *testing.T) {
	srv := redistest.Start(t)
	db := MustOpenDB(t, srv, nil)
	b := MustNewBroker(t, db)
	ctx := context.Background()
	key := pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "es"}
	langs := db.Prefix + "stream:{golden-eagle-427}:langs"

	b.StreamKeyTTL = time.Hour
	publish(t, b, key, chunk(1))
	// A later publish with a longer TTL stands for publishes that go on
	// after the first TTL would have run out.
	b.StreamKeyTTL = 2 * time.Hour
	publish(t, b, key, chunk(2))
	if ttl := db.Client().PTTL(ctx, langs).Val(); ttl <= time.Hour {
		t.Fatalf("langs PTTL %v after a publish with a 2h TTL", ttl)
	}

	if err := db.Client().Del(ctx, langs).Err(); err != nil {
		t.Fatal(err)
	}
	publish(t, b, key, chunk(3))
	if err := b.DropSession(ctx, key.SessionID); err != nil {
		t.Fatal(err)
	}
	meta, log := db.Prefix+"stream:{golden-eagle-427}:es:meta", db.Prefix+"stream:{golden-eagle-427}:es:log"
	if n := db.Client().Exists(ctx, meta, log).Val(); n != 0 {
		t.Fatalf("%d keys of the stream left after DropSession", n)
	}
}

// TestBroker_StaleGroupIgnored has the reader of a closed subscription
// group drain buffered items of a channel that was subscribed again since
// through another group: it must leave that subscription to its own
// reader, neither delivering an old frame to it nor catching it up.
func TestBroker_StaleGroupIgnored(t *testing.T) {
	srv := redistest.Start(t)
	a, b := twoNodes(t, srv)
	key := pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "es"}
	onB := subscribe(t, b, key)
	publish(t, a, key, caption("one"))
	epoch := onB.WaitFor(t, 1)[0].Epoch

	// A frame of the stream's previous life, before the subscription.
	old := caption("old")
	old.Seq, old.Epoch, old.Language = 9, "0ld0ep0c", key.Language
	if err := redis.ReceiveStale(b, key, old); err != nil {
		t.Fatal(err)
	}
	publish(t, a, key, caption("two"))
	got := onB.WaitForText(t, "two")
	storetest.WantSeqs(t, got, 1, 2)
	for _, f := range got {
		if f.Epoch != epoch {
			t.Fatalf("frame %d %q of epoch %q delivered, want only epoch %q", f.Seq, f.Text, f.Epoch, epoch)
		}
	}
}
