package realtime

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
)

// TestCoalesceBatch: the frames per write are the fewest that keep writes
// within the budget, and come down a step only 10 % under it.
func TestCoalesceBatch(t *testing.T) {
	const budget = 60000
	for _, tt := range []struct {
		name string
		rate float64
		prev int
		want int
	}{
		{"Idle", 0, 0, 1},
		{"1x500", 25000, 1, 1},
		{"2x500", 50000, 1, 1},
		{"AtBudget", 60000, 1, 1},
		{"3x500", 75000, 1, 2},
		{"4x500", 100000, 1, 2},
		{"4x500Steady", 100000, 2, 2},
		{"6x500", 150000, 2, 3},
		{"8x500", 200000, 2, 4},
		{"HysteresisHolds", 57000, 2, 2},
		{"HysteresisReleases", 53000, 2, 1},
		{"DownTwoSteps", 100000, 4, 2},
		{"FromUnlimited", 25000, unlimitedBatch, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := coalesceBatch(tt.rate, budget, tt.prev); got != tt.want {
				t.Fatalf("coalesceBatch(%v, %v, %d) = %d, want %d", tt.rate, budget, tt.prev, got, tt.want)
			}
		})
	}
	t.Run("NoBudget", func(t *testing.T) {
		if got := coalesceBatch(100, 0, 1); got != unlimitedBatch {
			t.Fatalf("got %d, want unlimited", got)
		}
	})
}

// TestLoadMeter: the meter decides once per loadPeriod from the deliveries
// counted, on the clock it is given.
func TestLoadMeter(t *testing.T) {
	var l loadMeter
	t0 := time.Unix(1000, 0)
	// 4 streams × 500 listeners, a frame per stream every 20 ms: 100,000/s.
	feed := func(from time.Time, d time.Duration, streams, listeners int) time.Time {
		now := from
		for end := from.Add(d); now.Before(end); now = now.Add(20 * time.Millisecond) {
			for range streams {
				l.add(now, listeners, 60000)
			}
		}
		return now
	}
	if got := l.frames(); got != 1 {
		t.Fatalf("before any load: %d frames, want 1", got)
	}
	now := feed(t0, 200*time.Millisecond, 4, 500)
	if got := l.frames(); got != 1 {
		t.Fatalf("before a period has passed: %d frames, want 1", got)
	}
	now = feed(now, 400*time.Millisecond, 4, 500)
	if got := l.frames(); got != 2 {
		t.Fatalf("4 x 500: %d frames, want 2", got)
	}
	now = feed(now, time.Second, 8, 500)
	if got := l.frames(); got != 4 {
		t.Fatalf("8 x 500: %d frames, want 4", got)
	}
	feed(now, time.Second, 1, 500)
	if got := l.frames(); got != 1 {
		t.Fatalf("1 x 500: %d frames, want 1", got)
	}
	l.add(now, 1, 0)
	if got := l.frames(); got != unlimitedBatch {
		t.Fatalf("no budget: %d frames, want unlimited", got)
	}
}

// TestCoalescer: which frames of a stream are held, and for how long the
// timer gives a hold, for frames every 20 ms (and some irregular ones).
func TestCoalescer(t *testing.T) {
	const ms = time.Millisecond
	t0 := time.Unix(1000, 0)
	type step struct {
		at      time.Duration // arrival, from t0
		batch   int
		hold    bool
		timeout time.Duration // when the hold starts
	}
	for _, tt := range []struct {
		name    string
		maxHold time.Duration
		steps   []step
	}{
		{"NotBusy", 45 * ms, []step{
			{0, 1, false, 0}, {20 * ms, 1, false, 0}, {40 * ms, 1, false, 0},
		}},
		{"TwoPerWrite", 45 * ms, []step{
			{0, 2, false, 0}, // the first frame after silence: no gap known
			{20 * ms, 2, true, 30 * ms},
			{40 * ms, 2, false, 0},
			{60 * ms, 2, true, 30 * ms},
			{80 * ms, 2, false, 0},
		}},
		{"ThreePerWrite", 45 * ms, []step{
			{0, 3, false, 0},
			{20 * ms, 3, true, 45 * ms}, // 2.5 gaps = 50 ms, capped
			{40 * ms, 3, true, 0},
			{60 * ms, 3, false, 0},
		}},
		{"MaxHoldCaps", 45 * ms, []step{
			{0, 8, false, 0},
			{20 * ms, 8, true, 45 * ms},
			{40 * ms, 8, true, 0},
			{60 * ms, 8, false, 0}, // 40 ms held + 20 ms: past 45 ms
		}},
		{"Unlimited", 45 * ms, []step{
			{0, unlimitedBatch, false, 0},
			{20 * ms, unlimitedBatch, true, 45 * ms},
			{40 * ms, unlimitedBatch, true, 0},
			{60 * ms, unlimitedBatch, false, 0},
		}},
		{"Off", 0, []step{
			{0, 2, false, 0}, {20 * ms, 2, false, 0}, {40 * ms, 2, false, 0},
		}},
		{"LoadRises", 45 * ms, []step{
			{0, 1, false, 0}, {20 * ms, 1, false, 0},
			{40 * ms, 2, true, 30 * ms}, {60 * ms, 2, false, 0},
		}},
		{"LoadFallsWhileHeld", 45 * ms, []step{
			{0, 3, false, 0}, {20 * ms, 3, true, 45 * ms},
			{40 * ms, 1, false, 0}, // writes the held frame with this one
			{60 * ms, 1, false, 0},
		}},
		{"LateFrame", 45 * ms, []step{
			{0, 2, false, 0},
			{20 * ms, 2, true, 30 * ms},
			{70 * ms, 2, false, 0}, // after the timer (released by it); ends the hold either way
			{90 * ms, 2, true, 30 * ms},
		}},
		{"ShortGapShortTimer", 45 * ms, []step{
			{0, 2, false, 0},
			{4 * ms, 2, true, 6 * ms},
		}},
		{"LongGapNotHeld", 45 * ms, []step{
			{0, 2, false, 0},
			{50 * ms, 2, false, 0}, // the next one would be past 45 ms
			{70 * ms, 2, true, 30 * ms},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var co coalescer
			co.lastFrame = t0.Add(-time.Hour) // long silence before
			for i, s := range tt.steps {
				hold, timeout := co.audio(t0.Add(s.at), s.batch, tt.maxHold)
				if hold != s.hold || timeout != s.timeout {
					t.Fatalf("frame %d at %v (batch %d): hold %v timeout %v, want %v %v",
						i, s.at, s.batch, hold, timeout, s.hold, s.timeout)
				}
				if !hold {
					co.release() // deliver writes what was held with this frame
				}
			}
		})
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, _ := ln.AcceptTCP()
		accepted <- c
	}()
	client, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// testBatch is n audio frames of size payload bytes, each filled with its
// own byte.
func testBatch(first, n, size int) []*wsMsg {
	batch := make([]*wsMsg, n)
	for i := range batch {
		buf := make([]byte, maxFrameHeader+size)
		for j := maxFrameHeader; j < len(buf); j++ {
			buf[j] = byte(first + i)
		}
		batch[i] = newMsg(opBinary, buf, true)
	}
	return batch
}

// TestWriteBatchSkip: writeBatch leaves out the first skip bytes of a
// batch, whole frames and part of one, on TCP (writev) and on other
// connections (one copied write).
func TestWriteBatchSkip(t *testing.T) {
	for _, skip := range []int64{0, 1, 3003, 3004, 3005, 6008, 12015} {
		batch := testBatch(1, 4, 3000)
		var all []byte
		for _, m := range batch {
			all = append(all, m.b...)
		}
		want := all[skip:]
		t.Run(fmt.Sprintf("TCP/%d", skip), func(t *testing.T) {
			nc, peer := tcpPair(t)
			c := &conn{srv: &Server{WriteTimeout: time.Minute}, nc: nc}
			if _, audio, n, err := c.writeBatch(batch, skip); err != nil || n != int64(len(want)) || audio != 4 {
				t.Fatalf("wrote %d of %d, audio %d, err %v", n, len(want), audio, err)
			}
			b := make([]byte, len(want))
			if _, err := io.ReadFull(peer, b); err != nil || !bytes.Equal(b, want) {
				t.Fatalf("peer got other bytes (err %v)", err)
			}
		})
		t.Run(fmt.Sprintf("Pipe/%d", skip), func(t *testing.T) {
			nc, peer := net.Pipe()
			defer nc.Close()
			defer peer.Close()
			c := &conn{srv: &Server{WriteTimeout: time.Minute}, nc: nc}
			got := make(chan []byte)
			go func() {
				b := make([]byte, len(want))
				_, _ = io.ReadFull(peer, b)
				got <- b
			}()
			if _, _, n, err := c.writeBatch(batch, skip); err != nil || n != int64(len(want)) {
				t.Fatalf("wrote %d of %d, err %v", n, len(want), err)
			}
			if b := <-got; !bytes.Equal(b, want) {
				t.Fatal("peer got other bytes")
			}
		})
	}
}

// TestFanoutDrains: whatever the interleaving of held audio, the next
// frame's kick, the hold timer, captions and control messages queued from
// other goroutines, every frame queued on a stream's listeners is written:
// once the stream falls silent every queue empties and no writer is left
// marked as running. Frames come at random gaps (0–25 ms), so holds end
// both ways, and some back to back.
func TestFanoutDrains(t *testing.T) {
	s := NewServer()
	s.WriteCoalesce = 30 * time.Millisecond
	s.CoalesceAbove = 0 // hold as many frames as WriteCoalesce allows
	s.MaxFrameAge = 0
	conns := tcpConns(t, s, 3*passMin) // several pass goroutines
	st := &hubStream{key: pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "en"}, subs: map[*conn]*streamSub{},
		sess: &hubSession{hub: &hub{srv: s}}}
	for _, c := range conns {
		st.subs[c] = &streamSub{}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			conns[i%len(conns)].send(obj{"type": "heartbeatAck"})
			time.Sleep(time.Millisecond) // a control message every millisecond or so
		}
	})
	rng := rand.New(rand.NewPCG(14, 60000))
	for seq := uint64(1); seq <= 200; seq++ {
		f := benchFrame()
		f.Seq, f.Time = seq, time.Now()
		if seq%30 == 0 {
			f.Kind, f.Text, f.Data = pentecost.FrameCaption, "hello", nil
		}
		st.deliver(f)
		time.Sleep(time.Duration(rng.IntN(26)) * time.Millisecond) // the speaker's pace
	}
	close(done)
	wg.Wait()

	stuck := func() (n int) {
		for _, c := range conns {
			c.wmu.Lock()
			if len(c.queue) > 0 || c.writing {
				n++
			}
			c.wmu.Unlock()
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); stuck() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections still have frames queued or a writer marked running", stuck(), len(conns))
		}
	}
}
