package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/redistest"
)

// BenchmarkBroker_PublishDeliver measures one 640-byte frame (20 ms of
// 16 kHz PCM) published on one node and delivered to a subscriber on
// another, through a local Redis: the per-frame cost of the shared path.
func BenchmarkBroker_PublishDeliver(b *testing.B) {
	srv := redistest.Start(b)
	prefix := newPrefix()
	pub := MustNewBroker(b, MustOpenDBPrefix(b, srv, nil, prefix))
	sub := MustNewBroker(b, MustOpenDBPrefix(b, srv, nil, prefix))
	key := pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "es"}
	got := make(chan uint64, 1024)
	unsub, err := sub.Subscribe(context.Background(), key, func(f *pentecost.Frame) { got <- f.Seq })
	if err != nil {
		b.Fatal(err)
	}
	defer unsub()
	data := make([]byte, 640)
	b.SetBytes(int64(len(data)))
	var latency time.Duration
	for b.Loop() {
		start := time.Now()
		f := &pentecost.Frame{Kind: pentecost.FrameAudio, Data: data}
		if err := pub.Publish(context.Background(), key, f); err != nil {
			b.Fatal(err)
		}
		if seq := <-got; seq != f.Seq {
			b.Fatalf("delivered %d, published %d", seq, f.Seq)
		}
		latency += time.Since(start)
	}
	b.ReportMetric(float64(latency.Microseconds())/float64(b.N), "µs/delivery")
}

// BenchmarkBroker_Publish measures publishing alone (no subscriber waits).
func BenchmarkBroker_Publish(b *testing.B) {
	srv := redistest.Start(b)
	pub := MustNewBroker(b, MustOpenDB(b, srv, nil))
	key := pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "es"}
	data := make([]byte, 640)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := pub.Publish(context.Background(), key, &pentecost.Frame{Kind: pentecost.FrameAudio, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPresence_JoinLeave measures a listener joining and leaving a
// session of 100 listeners.
func BenchmarkPresence_JoinLeave(b *testing.B) {
	srv := redistest.Start(b)
	p := redis.NewPresence(MustOpenDB(b, srv, nil))
	ctx := context.Background()
	for i := range 100 {
		if _, err := p.Join(ctx, pentecost.PresenceEntry{SessionID: "s", ConnID: fmt.Sprint("base", i), Language: "en"}, 500, false); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		id := fmt.Sprint("c", i)
		i++
		if _, err := p.Join(ctx, pentecost.PresenceEntry{SessionID: "s", ConnID: id, Language: "es"}, 500, false); err != nil {
			b.Fatal(err)
		}
		if _, _, err := p.Leave(ctx, "s", id); err != nil {
			b.Fatal(err)
		}
	}
}
