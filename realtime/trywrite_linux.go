package realtime

import (
	"errors"
	"net"
	"syscall"
	"unsafe"
)

// On Linux the runtime's sockets are non-blocking and write(2) on a full
// one returns EAGAIN, so a fan-out pass can try a listener's write and
// move on when the socket is full. Elsewhere tryWrite writes nothing and
// every write has its writer goroutine (trywrite_other.go).

// canTryWrite says that tryWrite writes plain TCP connections here.
const canTryWrite = true

// tryWrite writes batch if the socket takes all of it at once, without
// waiting (done), or reports how much of it went out; err is a failed
// write. Only plain TCP: bytes written under a TLS connection would
// bypass its record layer, so a TLS connection (or any other) is left to
// its writer goroutine with nothing written.
func (c *conn) tryWrite(p *pass, batch []*wsMsg) (closing bool, audio int, written int64, done bool, err error) {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return false, 0, 0, false, nil
	}
	size := 0
	for _, m := range batch {
		size += len(m.b)
	}
	if size > tryWriteMax {
		return false, 0, 0, false, nil
	}
	if c.raw == nil {
		// Kept: asked for on every write it was one allocation per write.
		if c.raw, err = tc.SyscallConn(); err != nil {
			return false, 0, 0, false, err
		}
	}
	c.renewDeadline() // an expired one fails the write before it is tried
	p.buf, closing, audio = appendBatch(p.buf[:0], batch)
	if p.fn == nil {
		p.fn = p.write
	}
	p.n, p.err = 0, nil
	err = c.raw.Write(p.fn)
	n, werr := max(p.n, 0), p.err // n is -1 with an error
	switch {
	case err != nil:
	case werr == nil:
		done = n == size
	case errors.Is(werr, syscall.EAGAIN), errors.Is(werr, syscall.EINTR):
	default:
		err = werr
	}
	return closing, audio, int64(n), done, err
}

// write is the raw write of p.buf on fd, tried once. The socket is
// non-blocking, so the call cannot block: RawSyscall spares the
// scheduler's entry and exit bookkeeping that syscall.Write does for a
// call that might (runtime.exitsyscall was 2 % of the server's CPU at
// 4 × 500).
func (p *pass) write(fd uintptr) bool {
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p.buf))), uintptr(len(p.buf)))
	p.n, p.err = int(n), nil
	if errno != 0 {
		p.n, p.err = -1, errno
	}
	return true // never wait for the socket: that is the writer goroutine's job
}
