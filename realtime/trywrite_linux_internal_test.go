package realtime

import (
	"bytes"
	"io"
	"testing"
	"time"
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
