package uring

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's ABI (include/uapi/linux/io_uring.h).
const (
	opSend         = 26         // IORING_OP_SEND
	enterGetEvents = 1          // IORING_ENTER_GETEVENTS
	featSingleMmap = 1          // IORING_FEAT_SINGLE_MMAP
	offSQEs        = 0x10000000 // IORING_OFF_SQES
	sendFlags      = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
)

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqOffsets
	cqOff                                                                  cqOffsets
}

type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// sqe is struct io_uring_sqe, as a send uses it.
type sqe struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	msgFlags uint32
	userData uint64
	_        [3]uint64
}

// cqe is struct io_uring_cqe.
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// The kernel's sizes, checked when compiling.
var (
	_ [120]byte = [unsafe.Sizeof(params{})]byte{}
	_ [64]byte  = [unsafe.Sizeof(sqe{})]byte{}
	_ [16]byte  = [unsafe.Sizeof(cqe{})]byte{}
)

// Ring is an io_uring for sends. It is not safe for concurrent use: give
// each goroutine that sends its own.
type Ring struct {
	fd      int
	ringMem []byte
	sqeMem  []byte
	sqTail  *uint32
	sqMask  uint32
	sqes    []sqe
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    []cqe
	sqHead  *uint32
	entries int
}

// New sets up a ring of entries submission slots (a power of two) and
// checks that this kernel completes a non-blocking send on a full socket
// at once with EAGAIN, as SendAll needs; it returns ErrUnsupported
// (wrapping the reason) where it does not, or io_uring is refused.
func New(entries uint32) (*Ring, error) {
	var p params
	fd, _, errno := syscall.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("%w: io_uring_setup: %v", ErrUnsupported, errno)
	}
	r := &Ring{fd: int(fd)}
	if p.features&featSingleMmap == 0 {
		r.Close()
		return nil, fmt.Errorf("%w: kernel without IORING_FEAT_SINGLE_MMAP", ErrUnsupported)
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	var err error
	if r.ringMem, err = unix.Mmap(r.fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("uring: mapping the rings: %w", err)
	}
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		r.Close()
		return nil, fmt.Errorf("uring: mapping the submission entries: %w", err)
	}
	at := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&r.ringMem[off])) }
	r.sqHead, r.sqTail, r.sqMask = at(p.sqOff.head), at(p.sqOff.tail), *at(p.sqOff.ringMask)
	r.cqHead, r.cqTail, r.cqMask = at(p.cqOff.head), at(p.cqOff.tail), *at(p.cqOff.ringMask)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&r.ringMem[p.cqOff.cqes])), p.cqEntries)
	r.entries = int(p.sqEntries)
	// Slot i of the submission queue always names entry i.
	array := unsafe.Slice((*uint32)(unsafe.Pointer(&r.ringMem[p.sqOff.array])), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	if err := r.probe(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// probe checks on a socket pair that a send is done within the call:
// one goes out whole, and one to a full socket fails with EAGAIN rather
// than waiting for room, as kernels that arm a poll for it would.
func (r *Ring) probe() error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("uring: probe: %w", err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	buf := make([]byte, 4096)
	s := []Send{{FD: fds[0], Buf: buf[:1]}}
	if err := r.SendAll(s); err != nil {
		return err
	}
	if s[0].N != 1 {
		return fmt.Errorf("%w: probe send: %d bytes, %v", ErrUnsupported, s[0].N, s[0].Err)
	}
	for {
		if _, err := unix.Write(fds[0], buf); err != nil {
			break
		}
	}
	s[0] = Send{FD: fds[0], Buf: buf}
	if err := r.queue(s); err != nil {
		return err
	}
	// Submitted without waiting: a kernel that waits for room would wait
	// forever.
	if n, err := r.enter(1, 0); err != nil || n != 1 {
		return fmt.Errorf("%w: probe submission: %d taken, %v", ErrUnsupported, n, err)
	}
	if r.reap(s) != 1 || s[0].Err != syscall.EAGAIN {
		// The ring is closed next; the kernel cancels the waiting send
		// then (it only reads buf, which stays on the heap).
		return fmt.Errorf("%w: a send to a full socket did not fail at once", ErrUnsupported)
	}
	return nil
}

// SendAll makes every send of sends, without waiting for room on any
// socket, and fills in each one's outcome (Send.Done, N, Err). It returns
// an error only when the ring itself failed, which leaves the sends not
// Done in one of two states: Lost (the kernel took it and its outcome is
// unknown: bytes may have gone out) or neither (never made). A ring that
// failed must be closed, not used again. The descriptors must stay open
// until it returns.
func (r *Ring) SendAll(sends []Send) error {
	for i := range sends {
		sends[i].N, sends[i].Err, sends[i].Done, sends[i].Lost = 0, nil, false, false
	}
	for len(sends) > 0 {
		chunk := sends[:min(len(sends), r.entries)]
		if err := r.sendChunk(chunk); err != nil {
			return err
		}
		sends = sends[len(chunk):]
	}
	return nil
}

// sendChunk makes sends, at most entries of them, and waits for every one
// the kernel took.
func (r *Ring) sendChunk(sends []Send) error {
	if err := r.queue(sends); err != nil {
		return err
	}
	n := len(sends)
	taken, done := 0, 0
	var err error
	for taken < n && err == nil {
		var k int
		k, err = r.enter(n-taken, n-taken)
		taken += k
	}
	done += r.reap(sends)
	for done < taken && err == nil {
		_, err = r.enter(0, taken-done)
		done += r.reap(sends)
	}
	if err != nil {
		for i := range sends[:taken] {
			sends[i].Lost = !sends[i].Done
		}
	}
	return err
}

// queue writes a submission entry for each send and publishes them.
func (r *Ring) queue(sends []Send) error {
	tail := *r.sqTail // only this goroutine writes it
	if head := atomic.LoadUint32(r.sqHead); tail-head+uint32(len(sends)) > uint32(r.entries) {
		return fmt.Errorf("uring: %d entries still queued", tail-head)
	}
	for i := range sends {
		s := &sends[i]
		e := &r.sqes[(tail+uint32(i))&r.sqMask]
		*e = sqe{opcode: opSend, fd: int32(s.FD), len: uint32(len(s.Buf)), msgFlags: sendFlags, userData: uint64(i)}
		if len(s.Buf) > 0 {
			e.addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(s.Buf))))
		}
	}
	// The store publishes the entries to the kernel (a release).
	atomic.StoreUint32(r.sqTail, tail+uint32(len(sends)))
	return nil
}

// enter makes one io_uring_enter: it submits up to toSubmit queued
// entries and waits until wait completions are there. It reports how many
// entries the kernel took; interrupted, none, and no error.
func (r *Ring) enter(toSubmit, wait int) (int, error) {
	flags := uintptr(0)
	if wait > 0 {
		flags = enterGetEvents
	}
	n, _, errno := syscall.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(wait), flags, 0, 0)
	switch errno {
	case 0:
		return int(n), nil
	case syscall.EINTR:
		return 0, nil
	default:
		// EAGAIN and EBUSY too (no memory for requests, completions not
		// reaped): a ring reaps every completion before its next call,
		// so they mean the ring is unusable.
		return 0, fmt.Errorf("uring: io_uring_enter: %w", errno)
	}
}

// reap reads the completions available into sends and reports how many
// there were.
func (r *Ring) reap(sends []Send) int {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail) // an acquire: the entries are there
	n := 0
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		if i := int(c.userData); i < len(sends) {
			s := &sends[i]
			s.Done = true
			if c.res < 0 {
				s.Err = syscall.Errno(-c.res)
			} else {
				s.N = int(c.res)
			}
		}
		n++
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// Close releases the ring; a send still in flight is cancelled.
func (r *Ring) Close() error {
	if r.sqeMem != nil {
		_ = unix.Munmap(r.sqeMem)
		r.sqeMem = nil
	}
	if r.ringMem != nil {
		_ = unix.Munmap(r.ringMem)
		r.ringMem = nil
	}
	if r.fd >= 0 {
		err := unix.Close(r.fd)
		r.fd = -1
		return err
	}
	return nil
}
