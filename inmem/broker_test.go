package inmem_test

import (
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/inmem"
)

func TestBroker(t *testing.T) {
	ctx := t.Context()
	key := pentecost.StreamKey{SessionID: "s", Language: "en"}

	t.Run("OrderAndHistory", func(t *testing.T) {
		b := inmem.NewBroker()
		b.HistorySize = 5
		var got []uint64
		unsub, _ := b.Subscribe(ctx, key, func(f *pentecost.Frame) { got = append(got, f.Seq) })
		for range 8 {
			if err := b.Publish(ctx, key, &pentecost.Frame{Kind: pentecost.FrameAudio, Data: []byte{1}}); err != nil {
				t.Fatal(err)
			}
		}
		unsub()
		unsub() // idempotent
		_ = b.Publish(ctx, key, &pentecost.Frame{Kind: pentecost.FrameAudio})
		if len(got) != 8 || got[0] != 1 || got[7] != 8 {
			t.Fatalf("delivered %v", got)
		}
		frames, pos, _ := b.History(ctx, key, 6)
		if pos.First != 5 || pos.Last != 9 || len(frames) != 3 || frames[0].Seq != 7 || pos.Epoch == "" {
			t.Fatalf("history %d frames, pos %+v", len(frames), pos)
		}
	})
	t.Run("HistoryTTL", func(t *testing.T) {
		now := time.Unix(1000, 0)
		b := inmem.NewBroker()
		b.Now = func() time.Time { return now }
		_ = b.Publish(ctx, key, &pentecost.Frame{})
		now = now.Add(11 * time.Second)
		_ = b.Publish(ctx, key, &pentecost.Frame{})
		frames, pos, _ := b.History(ctx, key, 0)
		if len(frames) != 1 || pos.First != 2 {
			t.Fatalf("history %d frames, pos %+v", len(frames), pos)
		}
	})
	t.Run("EpochPerStream", func(t *testing.T) {
		b := inmem.NewBroker()
		other := inmem.NewBroker()
		p1, _ := b.Position(ctx, key)
		p2, _ := other.Position(ctx, key)
		if p1.Epoch == p2.Epoch {
			t.Fatal("two histories share an epoch")
		}
	})
	t.Run("ErrValidation", func(t *testing.T) {
		b := inmem.NewBroker()
		if err := b.Publish(ctx, pentecost.StreamKey{}, &pentecost.Frame{}); pentecost.ErrorCode(err) != pentecost.EVALIDATIONFIELD {
			t.Fatalf("err = %v", err)
		}
	})
}
