package realtime

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The write path (Centrifuge-style): each connection has one bounded queue
// of shared, pre-encoded frames. Publishers append and never block; one
// writer goroutine, started only while the queue is non-empty, takes
// everything queued and writes it with a single writev. A loopback write
// costs about 11.5 µs of CPU whatever its size, so coalescing is what makes
// more than ~80,000 deliveries per second per core possible; starting the
// writer on demand keeps an idle listener free of a goroutine and buffers.

// buffersPool recycles the iovec slices handed to writev.
var buffersPool = sync.Pool{New: func() any { b := make(net.Buffers, 0, 64); return &b }}

// copyPool recycles the buffers used to coalesce writes on connections that
// are not plain TCP (TLS), where writev is not available.
var copyPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// enqueue queues m for writing. It never blocks. When the queue is full the
// oldest audio frame is dropped to make room; control messages are never
// dropped. It reports whether m was queued.
func (c *conn) enqueue(m *wsMsg) bool { return c.enqueueMsg(m, false) }

// enqueueMsg is enqueue; hold leaves the writer asleep for an audio frame
// the caller promises to follow with another frame or a kick.
func (c *conn) enqueueMsg(m *wsMsg, hold bool) bool {
	c.wmu.Lock()
	if c.closing || c.dead {
		c.wmu.Unlock()
		return false
	}
	if limit := c.srv.QueueFrames; len(c.queue) >= limit {
		i := -1
		for j, q := range c.queue {
			if q.audio {
				i = j
				break
			}
		}
		switch {
		case i >= 0:
			copy(c.queue[i:], c.queue[i+1:])
			c.queue[len(c.queue)-1] = nil
			c.queue = c.queue[:len(c.queue)-1]
		case m.audio:
			c.drops++
			c.srv.metrics.dropped.Inc()
			c.wmu.Unlock()
			return false
		}
		if i >= 0 {
			c.drops++
			c.srv.metrics.dropped.Inc()
			c.srv.metrics.queued.Dec()
		}
		// A connection that lost a whole queue of audio since its last
		// successful write, or has a queue of nothing but control messages,
		// is not keeping up: it is disconnected rather than served stale audio.
		if c.drops > limit || len(c.queue) >= 2*limit {
			c.slowLocked()
			c.wmu.Unlock()
			return false
		}
	}
	c.queue = append(c.queue, m)
	c.srv.metrics.queued.Inc()
	c.holding = hold && m.audio
	if !c.holding {
		c.startWriterLocked()
	}
	c.wmu.Unlock()
	return true
}

// slowLocked replaces the queue by a close frame (4001). Called with wmu held.
func (c *conn) slowLocked() {
	c.srv.metrics.queued.Sub(float64(len(c.queue)))
	clear(c.queue)
	c.queue = append(c.queue[:0], closeMsg(CloseSlow, "too slow"))
	c.srv.metrics.queued.Inc()
	c.closing = true
	c.closeCode = CloseSlow
	c.srv.metrics.slow.Inc()
	c.startWriterLocked()
}

// abandonLocked drops what is queued on a dead connection, keeping the
// queued-frames gauge right. Called with wmu held.
func (c *conn) abandonLocked() {
	c.srv.metrics.queued.Sub(float64(len(c.queue)))
	clear(c.queue)
	c.queue = c.queue[:0]
}

func (c *conn) startWriterLocked() {
	if !c.writing {
		c.writing = true
		go c.writeLoop()
	}
}

// kick starts the writer if frames wait (see hubStream.deliver: held frames).
func (c *conn) kick() {
	c.wmu.Lock()
	c.holding = false
	if len(c.queue) > 0 && !c.dead {
		c.startWriterLocked()
	}
	c.wmu.Unlock()
}

// closeWith queues a close frame after what is already queued; nothing may
// be queued after it. The reader completes the closing handshake.
func (c *conn) closeWith(code int, reason string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing || c.dead {
		return
	}
	c.closing = true
	c.closeCode = code
	c.queue = append(c.queue, closeMsg(code, reason))
	c.srv.metrics.queued.Inc()
	c.startWriterLocked()
}

// writeLoop writes until the queue is empty, then exits.
func (c *conn) writeLoop() {
	for {
		c.wmu.Lock()
		// A writer still busy with the last batch leaves held frames for
		// the kick, or they would go out alone (4 × 500, 45 ms: batches of
		// 1.55 frames instead of 2.87).
		if len(c.queue) == 0 || c.dead || (c.holding && !c.closing) {
			c.writing = false
			if c.dead || (c.closing && c.closeWritten) {
				c.signalFlushedLocked()
			}
			if c.dead {
				c.abandonLocked() // nothing will write these
			}
			// Give memory back while idle: a queue that grew during a burst
			// would otherwise be held for the life of the connection. Only
			// an empty one: a writer that stops at held frames leaves them
			// queued for the kick, and dropping them lost audio uncounted.
			if len(c.queue) == 0 && cap(c.queue) > 32 {
				c.queue = nil
			}
			c.spare = nil
			c.wmu.Unlock()
			return
		}
		batch := c.queue
		c.queue = c.spare[:0]
		c.spare = nil
		c.wmu.Unlock()

		closing, audio, written, err := c.writeBatch(batch)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.dropBlocked(batch, written)
		}
		c.srv.metrics.queued.Sub(float64(len(batch)))
		c.srv.metrics.batch.Observe(float64(len(batch)))
		c.srv.metrics.framesOut.Add(float64(audio))
		clear(batch)

		c.wmu.Lock()
		c.spare = batch[:0]
		if err != nil {
			c.dead = true
			c.writing = false
			c.abandonLocked() // queued during the failed write
			c.signalFlushedLocked()
			c.wmu.Unlock()
			_ = c.nc.Close()
			return
		}
		c.drops = 0
		if closing {
			// Give the peer a moment to answer the close, then the reader
			// gives up and the connection is torn down. Set under wmu, so
			// that the reader's frame deadline cannot undo it.
			c.closeWritten = true
			_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.CloseTimeout))
		}
		c.wmu.Unlock()
	}
}

// dropBlocked ends a connection whose write was blocked for WriteTimeout: a
// listener that stopped reading before its queue overflowed. It is counted
// and told as one whose queue overflows is (4001), as far as the rest of
// the frame the write was cut off in, and a close frame after it, still go
// out within CloseTimeout. Called by the writer before the batch is cleared.
func (c *conn) dropBlocked(batch []*wsMsg, written int64) {
	var out net.Buffers
	closeBegun := false // then it is the close the peer gets
	for _, m := range batch {
		if n := int64(len(m.b)); written >= n {
			written -= n
			continue
		}
		if written > 0 {
			out = append(out, m.b[written:])
			closeBegun = m.b[0] == 0x80|opClose
		}
		break
	}
	c.wmu.Lock()
	counted := c.closeCode == CloseSlow // by slowLocked
	c.closing = true
	if !closeBegun {
		c.closeCode = CloseSlow
		out = append(out, closeMsg(CloseSlow, "too slow").b)
	}
	c.wmu.Unlock()
	if !counted {
		c.srv.metrics.slow.Inc()
	}
	c.wdeadline = time.Now().Add(c.srv.CloseTimeout)
	_ = c.nc.SetWriteDeadline(c.wdeadline)
	_, _ = out.WriteTo(c.nc)
}

// writeBatch writes every frame of batch in one system call where it can,
// and reports how many bytes went out.
func (c *conn) writeBatch(batch []*wsMsg) (closing bool, audio int, written int64, err error) {
	// Renewing the deadline only once half of it has passed still drops a
	// stalled connection within WriteTimeout; setting it on every write was
	// 2.7 % of the server's CPU at 100,000 deliveries/s (pprof, 4 × 500).
	if now := time.Now(); c.wdeadline.Sub(now) < c.srv.WriteTimeout/2 {
		c.wdeadline = now.Add(c.srv.WriteTimeout)
		_ = c.nc.SetWriteDeadline(c.wdeadline)
	}
	if _, ok := c.nc.(*net.TCPConn); ok {
		bp := buffersPool.Get().(*net.Buffers)
		bufs := (*bp)[:0]
		for _, m := range batch {
			bufs = append(bufs, m.b)
			closing = closing || m.b[0] == 0x80|opClose
			if m.audio {
				audio++
			}
		}
		all := bufs
		written, err = bufs.WriteTo(c.nc)
		clear(all)
		*bp = all[:0]
		buffersPool.Put(bp)
		return closing, audio, written, err
	}
	bp := copyPool.Get().(*[]byte)
	buf := (*bp)[:0]
	for _, m := range batch {
		buf = append(buf, m.b...)
		closing = closing || m.b[0] == 0x80|opClose
		if m.audio {
			audio++
		}
	}
	n, err := c.nc.Write(buf)
	if cap(buf) <= 256<<10 {
		*bp = buf[:0]
		copyPool.Put(bp)
	}
	return closing, audio, int64(n), err
}

func (c *conn) signalFlushedLocked() {
	if !c.flushedClosed {
		c.flushedClosed = true
		close(c.flushed)
	}
}

// queueLen returns how many frames wait to be written.
func (c *conn) queueLen() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(c.queue)
}

// loadMeter tells whether the server is busy: more audio deliveries per
// second than CoalesceAbove over the last measuring period (always when
// CoalesceAbove is 0).
type loadMeter struct {
	mu      sync.Mutex
	start   time.Time
	count   int
	busyNow atomic.Bool
}

// loadPeriod is how often the load meter decides.
const loadPeriod = 250 * time.Millisecond

// add counts n deliveries of one frame's fan-out.
func (l *loadMeter) add(n int, perSecond int) {
	if perSecond <= 0 {
		l.busyNow.Store(true)
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.IsZero() {
		l.start = now
	}
	l.count += n
	if el := now.Sub(l.start); el >= loadPeriod {
		l.busyNow.Store(float64(l.count) > float64(perSecond)*el.Seconds())
		l.start, l.count = now, 0
	}
}

func (l *loadMeter) busy() bool { return l.busyNow.Load() }
