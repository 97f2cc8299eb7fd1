package realtime

import (
	"errors"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pentecost/pentecost/uring"
)

// The write path (Centrifuge-style): each connection has one bounded queue
// of shared, pre-encoded frames. Publishers append and never block; one
// writer at a time takes everything queued and writes it with a single
// system call. A loopback write costs about 11.5 µs of CPU whatever its
// size, so coalescing is what makes more than ~80,000 deliveries per
// second per core possible. A stream's audio fan-out is written by a few
// goroutines that try each listener's write without waiting (writeAll);
// a listener whose socket is full, and every other write (control
// messages, TLS), gets a writer goroutine of its own, started only while
// its queue is non-empty, so an idle listener costs no goroutine and no
// buffers.

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
// the caller promises to follow with a claim (hubStream.kickAll).
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

// claim ends a hold and makes the caller c's writer if frames wait and no
// writer runs: the caller must then call writePass or writeFrom. Used by
// a stream's fan-out (hubStream.kickAll).
func (c *conn) claim() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.holding = false
	if len(c.queue) == 0 || c.dead || c.writing {
		return false
	}
	c.writing = true
	return true
}

// writeAll writes what is queued on cs, connections claimed by the
// caller, a slice each on up to GOMAXPROCS goroutines rather than a
// goroutine per connection. One write each is tried without waiting; a
// connection whose socket is full, or that is not plain TCP, gets its own
// writer goroutine as before, so a listener that stopped reading holds
// up nobody else. At 4 × 500 (two frames per write) a goroutine started,
// scheduled and ended per write cost 6.3–7.3 µs per delivery; this,
// 5.6–6.4 µs (pprof before: newproc, goexit0, schedule ≈ 10 %).
func writeAll(cs []*conn) {
	rings := &cs[0].srv.rings
	n := min(runtime.GOMAXPROCS(0), (len(cs)+passMin-1)/passMin)
	for i := range n {
		part := cs[i*len(cs)/n : (i+1)*len(cs)/n]
		go func() {
			p := passPool.Get().(*pass)
			if r := rings.get(); r != nil {
				ok := true
				for len(part) > 0 && ok {
					n := min(len(part), ringEntries) // p.buf holds their batches
					ok = p.writeRing(r, part[:n])
					part = part[n:]
				}
				rings.put(r, !ok)
				for _, c := range part { // after a ring failed
					c.writePass(p)
				}
			} else {
				tried := 0
				for _, c := range part {
					if c.writePass(p) {
						tried++
					}
				}
				part[0].srv.metrics.sendsWrite.Add(float64(tried))
			}
			if cap(p.buf) > 1<<20 {
				p.buf = nil // large frames once: not kept in the pool
			}
			passPool.Put(p)
		}()
	}
}

// passMin is the fewest connections worth a pass goroutine of their own.
const passMin = 64

// pass is a fan-out goroutine's scratch for tryWrite, reused from one
// connection to the next and from one fan-out to the next.
type pass struct {
	buf []byte // the batch, copied for one write(2)
	n   int    // what the write returned
	err error
	fn  func(fd uintptr) bool // the write, made once: a closure per write would be allocated

	rs    []ringSend   // writeRing's connections
	sends []uring.Send // ... and their sends
}

var passPool = sync.Pool{New: func() any { return &pass{buf: make([]byte, 0, 4<<10)} }}

// tryWriteMax is the largest batch tryWrite copies to write at once.
const tryWriteMax = 64 << 10

// writePass is the writer of a claimed connection for one try: it writes
// the queue if that goes without waiting, and leaves the rest, or what
// was queued meanwhile, to a writer goroutine. It reports whether it
// tried a write.
func (c *conn) writePass(p *pass) bool {
	batch := c.take()
	if batch == nil {
		return false
	}
	_, tcp := c.nc.(*net.TCPConn) // tryWrite leaves any other to its writer
	tried := tcp && canTryWrite
	closing, audio, written, done, err := c.tryWrite(p, batch)
	if !done && err == nil {
		go c.writeFrom(batch, written)
		return tried
	}
	if !c.wrote(batch, closing, audio, written, err) {
		return tried
	}
	if batch := c.take(); batch != nil {
		go c.writeFrom(batch, 0)
	}
	return tried
}

// writeLoop writes until the queue is empty, then exits.
func (c *conn) writeLoop() { c.writeFrom(nil, 0) }

// writeFrom writes batch, of which skip bytes are already out, then the
// queue until it is empty.
func (c *conn) writeFrom(batch []*wsMsg, skip int64) {
	for {
		if batch == nil {
			if batch = c.take(); batch == nil {
				return
			}
		}
		closing, audio, written, err := c.writeBatch(batch, skip)
		if !c.wrote(batch, closing, audio, skip+written, err) {
			return
		}
		batch, skip = nil, 0
	}
}

// take returns what is queued for the writer to write, or nil when the
// writer is to stop, which it records.
func (c *conn) take() []*wsMsg {
	c.wmu.Lock()
	defer c.wmu.Unlock()
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
		if len(c.queue) == 0 {
			// The next frames go into the batch just written: a writer
			// stops after nearly every batch, and dropping both slices
			// cost an allocation per delivery.
			if cap(c.queue) == 0 {
				c.queue = c.spare[:0]
			}
			// Give memory back while idle: a queue that grew during a
			// burst would otherwise be held for the life of the
			// connection. Not a queue of held frames: that dropped them
			// unseen.
			if cap(c.queue) > 32 {
				c.queue = nil
			}
		}
		c.spare = nil
		return nil
	}
	batch := c.queue
	c.queue = c.spare[:0]
	c.spare = nil
	return batch
}

// wrote records the outcome of writing batch (written bytes of it, from
// its start); it reports whether the writer goes on.
func (c *conn) wrote(batch []*wsMsg, closing bool, audio int, written int64, err error) bool {
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
		c.closeSocket()
		return false
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
	return true
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

// renewDeadline sets the write deadline again once half of it has passed:
// that still drops a stalled connection within WriteTimeout, and setting
// it on every write was 2.7 % of the server's CPU at 100,000 deliveries/s
// (pprof, 4 × 500).
func (c *conn) renewDeadline() {
	if now := time.Now(); c.wdeadline.Sub(now) < c.srv.WriteTimeout/2 {
		c.wdeadline = now.Add(c.srv.WriteTimeout)
		_ = c.nc.SetWriteDeadline(c.wdeadline)
	}
}

// writeBatch writes every frame of batch but its first skip bytes in one
// system call where it can, and reports how many bytes of them went out.
func (c *conn) writeBatch(batch []*wsMsg, skip int64) (closing bool, audio int, written int64, err error) {
	c.renewDeadline()
	if _, ok := c.nc.(*net.TCPConn); ok {
		bp := buffersPool.Get().(*net.Buffers)
		bufs := (*bp)[:0]
		for _, m := range batch {
			closing = closing || m.b[0] == 0x80|opClose
			if m.audio {
				audio++
			}
			switch n := int64(len(m.b)); {
			case skip >= n:
				skip -= n
			default:
				bufs = append(bufs, m.b[skip:])
				skip = 0
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
	buf, closing, audio := appendBatch((*bp)[:0], batch)
	n, err := c.nc.Write(buf[skip:])
	if cap(buf) <= 256<<10 {
		*bp = buf[:0]
		copyPool.Put(bp)
	}
	return closing, audio, int64(n), err
}

// appendBatch appends the bytes of batch to buf, and tells whether it
// holds a close frame and how many audio frames.
func appendBatch(buf []byte, batch []*wsMsg) (_ []byte, closing bool, audio int) {
	for _, m := range batch {
		buf = append(buf, m.b...)
		closing = closing || m.b[0] == 0x80|opClose
		if m.audio {
			audio++
		}
	}
	return buf, closing, audio
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

// loadMeter measures audio deliveries per second over periods of
// loadPeriod and turns the rate into how many frames a listener's write
// should carry (coalesceBatch): at 4 × 500 (100,000/s) two, at 1 × 500
// (25,000/s) one, i.e. no hold.
type loadMeter struct {
	mu    sync.Mutex
	start time.Time
	count int
	batch atomic.Int32
}

// loadPeriod is how often the load meter decides.
const loadPeriod = 250 * time.Millisecond

// unlimitedBatch is coalesceBatch's answer when CoalesceAbove is 0: hold
// as many frames as WriteCoalesce allows.
const unlimitedBatch = 1 << 10

// add counts n deliveries of one frame's fan-out at now; perSecond is the
// write budget (Server.CoalesceAbove).
func (l *loadMeter) add(now time.Time, n int, perSecond int) {
	if perSecond <= 0 {
		l.batch.Store(unlimitedBatch)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.IsZero() {
		l.start = now
	}
	l.count += n
	if el := now.Sub(l.start); el >= loadPeriod {
		rate := float64(l.count) / el.Seconds()
		l.batch.Store(int32(coalesceBatch(rate, float64(perSecond), int(l.batch.Load()))))
		l.start, l.count = now, 0
	}
}

// frames is how many audio frames a listener's write should carry at the
// last measured load (1: write each frame at once).
func (l *loadMeter) frames() int { return max(int(l.batch.Load()), 1) }

// coalesceBatch is the fewest frames per write that keep the writes per
// second at rate deliveries per second within budget: ceil(rate/budget).
// The writes coalescing saves are only worth their latency while they are
// needed: every frame held adds a frame interval (20 ms) to the latency
// of the frames before it. At 4 × 500 on 2 cores two frames per write
// gave p99 31–40 ms, three (the fixed 45 ms hold before) 56–88 ms for
// about 0.9 µs less per delivery (docs/performance.md, "Adaptive
// coalescing"). It comes down a step only once the rate is 10 % under the
// lower step's budget, so that a rate near a boundary does not flip it
// each period.
func coalesceBatch(rate, budget float64, prev int) int {
	if budget <= 0 {
		return unlimitedBatch
	}
	n := max(int(math.Ceil(rate/budget)), 1)
	if n >= unlimitedBatch {
		return unlimitedBatch
	}
	if n < prev && prev < unlimitedBatch && rate > 0.9*budget*float64(prev-1) {
		return prev
	}
	return n
}

// coalescer is a stream's write-coalescing state (hubStream.deliver),
// guarded by hubStream.mu: audio frames are held (queued on the listeners
// without waking their writers) until a write can carry batch of them.
type coalescer struct {
	lastFrame time.Time // when the last audio frame arrived
	heldSince time.Time // when the oldest held frame arrived
	held      int       // audio frames held
}

// audio decides for an audio frame arriving at now whether to hold it,
// given batch (loadMeter.frames) and the longest a frame may be held
// (Server.WriteCoalesce). A frame is held while fewer than batch frames
// would be in the write and the next one, expected one gap (the last
// interval) from now, would come before the oldest held frame has waited
// maxHold. When the frame starts a hold, timeout is when the stream's
// timer should write it if no frame follows: half a gap after the last
// frame of the batch is due, at most maxHold.
func (co *coalescer) audio(now time.Time, batch int, maxHold time.Duration) (hold bool, timeout time.Duration) {
	gap := now.Sub(co.lastFrame)
	co.lastFrame = now
	if co.held == 0 {
		co.heldSince = now
	}
	hold = maxHold > 0 && co.held+1 < batch && now.Sub(co.heldSince)+gap < maxHold
	if !hold {
		return false, 0
	}
	co.held++
	if co.held == 1 {
		timeout = maxHold
		if left := batch - 1; left < unlimitedBatch && time.Duration(left)*gap+gap/2 < maxHold {
			timeout = time.Duration(left)*gap + gap/2
		}
	}
	return true, timeout
}

// release ends a hold; it reports whether frames were held.
func (co *coalescer) release() bool {
	had := co.held > 0
	co.held = 0
	return had
}
