package realtime

import (
	"bytes"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
)

// TestTryWriteNeverWaits: tryWrite on a socket whose peer does not read
// returns, with what went out, once the socket is full, and writeBatch
// goes on from there: the peer, reading at last, gets every byte of every
// batch once, in order. This is how a fan-out pass hands a full
// connection to its own writer.
func TestTryWriteNeverWaits(t *testing.T) {
	nc, peer := tcpPair(t)
	c := &conn{srv: &Server{WriteTimeout: time.Minute}, nc: nc}
	var want bytes.Buffer
	const size = 3000
	p := new(pass) // one for every try, as a fan-out goroutine has
	var rest []*wsMsg
	var skip int64
	for i := 0; ; i++ {
		if i == 100000 {
			t.Fatal("the socket never filled")
		}
		batch := testBatch(3*i, 3, size)
		for _, m := range batch {
			want.Write(m.b)
		}
		closing, audio, n, done, err := c.tryWrite(p, batch)
		if err != nil || closing || audio != 3 {
			t.Fatalf("tryWrite: closing %v audio %d err %v", closing, audio, err)
		}
		if !done {
			if total := int64(3 * (size + 4)); n >= total {
				t.Fatalf("not done with %d of %d bytes written", n, total)
			}
			rest, skip = batch, n
			break
		}
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(want.Len())))
		got <- b
	}()
	if _, _, n, err := c.writeBatch(rest, skip); err != nil || skip+n != int64(3*(size+4)) {
		t.Fatalf("writeBatch: %d+%d bytes, err %v", skip, n, err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer got %d bytes, not the %d written in order", len(b), want.Len())
	}
}

// BenchmarkFanoutWrites500 measures the whole write path of one audio
// frame to 500 loopback listeners, one frame per write: the fan-out, the
// passes' writes and the peers' reads, as CPU time of this process per
// delivery (cpu-µs/delivery, from getrusage: steadier than wall time on
// a machine other jobs share).
func BenchmarkFanoutWrites500(b *testing.B) {
	s := NewServer()
	s.CoalesceAbove = 1 << 30 // one frame per write
	conns := tcpConns(b, s, 500)
	st := &hubStream{key: pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "en"}, subs: map[*conn]*streamSub{},
		sess: &hubSession{hub: &hub{srv: s}}}
	for _, c := range conns {
		st.subs[c] = &streamSub{}
	}
	idle := func() bool {
		for _, c := range conns {
			c.wmu.Lock()
			busy := c.writing || len(c.queue) > 0
			c.wmu.Unlock()
			if busy {
				return false
			}
		}
		return true
	}
	f := benchFrame()
	var seq uint64
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ReportAllocs()
	start := cpu()
	for b.Loop() {
		seq++
		g := *f
		g.Seq, g.Time = seq, time.Now()
		st.deliver(&g)
		for !idle() {
			time.Sleep(200 * time.Microsecond) // not spinning: its CPU would count
		}
	}
	b.ReportMetric(float64((cpu()-start).Microseconds())/float64(b.N*len(conns)), "cpu-µs/delivery")
}
