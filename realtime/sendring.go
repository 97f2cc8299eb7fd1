package realtime

import (
	"errors"
	"net"
	"sync"
	"syscall"

	"github.com/pentecost/pentecost/uring"
)

// A fan-out pass sends every listener's batch with one io_uring_enter per
// ringEntries listeners instead of a write(2) each (package uring): on
// loopback at 4 × 500 the system calls were three quarters of the
// server's CPU. Where io_uring is refused the pass writes each listener
// itself (writePass), as it always did elsewhere than Linux.

// ringEntries is how many sends one io_uring_enter makes.
const ringEntries = 128

// maxRings bounds the rings a server keeps: one per pass running at once
// (GOMAXPROCS per stream being fanned out). A pass that finds none free
// writes with write(2).
const maxRings = 64

// ringPool lends rings to fan-out passes. A refusal of the first ring
// turns it off for the life of the server; a later ring that cannot be
// made (out of descriptors, or locked memory on kernels before 5.12) only
// makes that pass write with write(2).
type ringPool struct {
	mu       sync.Mutex
	free     []*uring.Ring
	made     int  // rings open
	everMade bool // one was made: io_uring works here
	off      bool // disabled, refused by the kernel, or closed
	closed   bool
	onError  func(error) // told of the refusal, once
}

// get lends a ring, or nil: then write with write(2).
func (rp *ringPool) get() *uring.Ring {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.off {
		return nil
	}
	if n := len(rp.free); n > 0 {
		r := rp.free[n-1]
		rp.free = rp.free[:n-1]
		return r
	}
	if rp.made >= maxRings {
		return nil
	}
	r, err := uring.New(ringEntries)
	if err != nil {
		if !rp.everMade {
			rp.off = true
			if rp.onError != nil {
				rp.onError(err)
			}
		}
		return nil
	}
	rp.made++
	rp.everMade = true
	return r
}

// put returns a ring; one failed is closed rather than lent again.
func (rp *ringPool) put(r *uring.Ring, failed bool) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.closed || failed {
		rp.made--
		_ = r.Close()
		return
	}
	rp.free = append(rp.free, r)
}

// disable makes every pass write with write(2) (Server.NoIOURing).
func (rp *ringPool) disable() {
	rp.mu.Lock()
	rp.off = true
	rp.mu.Unlock()
}

// close closes the free rings; those lent are closed when returned.
func (rp *ringPool) close() {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.closed, rp.off = true, true
	for _, r := range rp.free {
		_ = r.Close()
	}
	rp.free = nil
}

// openRings sets up the first ring, so that the log says at start
// whether fan-out goes through io_uring.
func (s *Server) openRings() {
	if s.NoIOURing {
		s.rings.disable()
		s.Logger.Info("fan-out writes each listener with write(2): io_uring is turned off")
		return
	}
	s.rings.onError = func(err error) {
		s.Logger.Warn("fan-out writes each listener with write(2): io_uring is not available", "error", err)
	}
	if r := s.rings.get(); r != nil {
		s.rings.put(r, false)
		s.Logger.Info("fan-out sends through io_uring")
	}
}

// errSendLost is a listener's write whose outcome a failed ring lost.
var errSendLost = errors.New("realtime: io_uring failed with the send in flight")

// ringSend is a connection of a ring pass: its batch, where the batch's
// bytes are in the pass's buffer, and what the batch holds.
type ringSend struct {
	c          *conn
	batch      []*wsMsg
	start, end int
	closing    bool
	audio      int
}

// writeRing is writePass for cs, claimed connections (at most
// ringEntries, or p.buf grows with them), at once: each
// queue is taken and copied into p.buf, and every socket is sent its
// batch through r. A send that the socket did not take whole, and a
// connection that cannot be sent to this way (TLS, or closing), goes to
// its writer goroutine as in writePass. It reports false if the ring
// failed, after handing every batch to its writer goroutine.
func (p *pass) writeRing(r *uring.Ring, cs []*conn) bool {
	p.buf, p.rs, p.sends = p.buf[:0], p.rs[:0], p.sends[:0]
	for _, c := range cs {
		batch := c.take()
		if batch == nil {
			continue
		}
		fd, ok := c.holdFD()
		if !ok {
			go c.writeFrom(batch, 0)
			continue
		}
		s := ringSend{c: c, batch: batch, start: len(p.buf)}
		p.buf, s.closing, s.audio = appendBatch(p.buf, batch)
		s.end = len(p.buf)
		if s.end-s.start > tryWriteMax {
			c.releaseFD()
			p.buf = p.buf[:s.start]
			go c.writeFrom(batch, 0)
			continue
		}
		p.rs = append(p.rs, s)
		p.sends = append(p.sends, uring.Send{FD: fd})
	}
	// p.buf is complete: only now may the sends point into it.
	for i, s := range p.rs {
		p.sends[i].Buf = p.buf[s.start:s.end]
	}
	err := r.SendAll(p.sends)
	if len(cs) > 0 {
		cs[0].srv.metrics.sendsRing.Add(float64(len(p.rs)))
	}
	for _, s := range p.rs {
		s.c.releaseFD()
	}
	for i, s := range p.rs {
		res := p.sends[i]
		p.sends[i] = uring.Send{}
		p.rs[i] = ringSend{}
		n := int64(max(res.N, 0))
		var werr error
		switch {
		case res.Lost:
			// The ring failed after the kernel took this send: how much
			// of the batch went out is unknown, and a frame repeated or
			// cut would corrupt the stream. The listener is closed and
			// reconnects (and resumes).
			werr = errSendLost
		case !res.Done:
			// Never made: the writer goroutine writes the batch whole.
			go s.c.writeFrom(s.batch, 0)
			continue
		case res.Err == nil, errors.Is(res.Err, syscall.EAGAIN), errors.Is(res.Err, syscall.EINTR):
		default:
			werr = res.Err
		}
		if werr == nil && int(n) < s.end-s.start {
			go s.c.writeFrom(s.batch, n) // the socket is full: wait for it there
			continue
		}
		if !s.c.wrote(s.batch, s.closing, s.audio, n, werr) {
			continue
		}
		if batch := s.c.take(); batch != nil {
			go s.c.writeFrom(batch, 0)
		}
	}
	return err == nil
}

// holdFD returns the socket's descriptor for a send and keeps the socket
// from being closed (and the number reused) until releaseFD; it fails for
// a connection that is not plain TCP, or whose socket is closing.
func (c *conn) holdFD() (int, bool) {
	if !c.fdmu.TryRLock() {
		return -1, false // being closed
	}
	if c.fdClosed {
		c.fdmu.RUnlock()
		return -1, false
	}
	if !c.fdSet {
		tc, ok := c.nc.(*net.TCPConn)
		if !ok {
			c.fdmu.RUnlock()
			return -1, false
		}
		raw, err := tc.SyscallConn()
		if err == nil {
			err = raw.Control(func(fd uintptr) { c.fd = int(fd) })
		}
		if err != nil {
			c.fdmu.RUnlock()
			return -1, false
		}
		c.fdSet = true
	}
	return c.fd, true
}

func (c *conn) releaseFD() { c.fdmu.RUnlock() }

// closeSocket closes the connection's socket once no send holds its
// descriptor.
func (c *conn) closeSocket() {
	c.fdmu.Lock()
	c.fdClosed = true
	c.fdmu.Unlock()
	_ = c.nc.Close()
}
