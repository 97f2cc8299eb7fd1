package uring_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/pentecost/pentecost/uring"
)

// pair is a loopback TCP connection: the sending side's descriptor and
// the receiving side.
type pair struct {
	send *net.TCPConn
	fd   int
	recv net.Conn
}

func pairs(t *testing.T, n int) []pair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ps := make([]pair, n)
	for i := range ps {
		recv, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.Control(func(fd uintptr) { ps[i].fd = int(fd) }); err != nil {
			t.Fatal(err)
		}
		ps[i].send, ps[i].recv = c.(*net.TCPConn), recv
		t.Cleanup(func() { c.Close(); recv.Close() })
	}
	return ps
}

func newRing(t *testing.T, entries uint32) *uring.Ring {
	t.Helper()
	r, err := uring.New(entries)
	if err != nil {
		t.Fatalf("io_uring is needed on the machines this runs on (Linux, not refused): %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// More sends than the ring has slots go out in several submissions, each
// whole, to the right socket.
func TestSendAll_EverySocketGetsItsBytes(t *testing.T) {
	r := newRing(t, 4)
	ps := pairs(t, 10)
	sends := make([]uring.Send, len(ps))
	for i, p := range ps {
		sends[i] = uring.Send{FD: p.fd, Buf: bytes.Repeat([]byte{byte('a' + i)}, 100+i)}
	}
	for round := range 3 {
		if err := r.SendAll(sends); err != nil {
			t.Fatal(err)
		}
		for i, s := range sends {
			if s.Err != nil || s.N != len(s.Buf) {
				t.Fatalf("round %d, send %d: %d of %d bytes, %v", round, i, s.N, len(s.Buf), s.Err)
			}
			got := make([]byte, len(s.Buf))
			ps[i].recv.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(ps[i].recv, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, s.Buf) {
				t.Fatalf("socket %d got %q, want %q", i, got[:8], s.Buf[:8])
			}
		}
	}
}

// A socket whose peer stopped reading fills up: its send takes what fits,
// then fails with EAGAIN at once, and the sends beside it go out.
func TestSendAll_FullSocketDoesNotWait(t *testing.T) {
	r := newRing(t, 8)
	ps := pairs(t, 3)
	big := make([]byte, 256<<10)
	small := []byte("still here")
	var stuck uring.Send
	for range 1000 {
		sends := []uring.Send{{FD: ps[0].fd, Buf: small}, {FD: ps[1].fd, Buf: big}, {FD: ps[2].fd, Buf: small}}
		done := make(chan error, 1)
		go func() { done <- r.SendAll(sends) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("SendAll waited on a full socket")
		}
		for _, i := range []int{0, 2} {
			if sends[i].Err != nil || sends[i].N != len(small) {
				t.Fatalf("send beside the full socket: %d bytes, %v", sends[i].N, sends[i].Err)
			}
			got := make([]byte, len(small))
			if _, err := io.ReadFull(ps[i].recv, got); err != nil {
				t.Fatal(err)
			}
		}
		if stuck = sends[1]; stuck.Err != nil {
			break
		}
	}
	if !errors.Is(stuck.Err, syscall.EAGAIN) || stuck.N != 0 {
		t.Fatalf("send to the full socket: %d bytes, %v; want 0 and EAGAIN", stuck.N, stuck.Err)
	}
}

// A socket whose peer is gone fails its own send, with the socket's error,
// and no other.
func TestSendAll_DeadPeer(t *testing.T) {
	r := newRing(t, 8)
	ps := pairs(t, 2)
	ps[0].recv.(*net.TCPConn).SetLinger(0)
	ps[0].recv.Close() // a reset
	buf := []byte("hello")
	var dead uring.Send
	deadline := time.Now().Add(10 * time.Second)
	for dead.Err == nil && time.Now().Before(deadline) {
		sends := []uring.Send{{FD: ps[0].fd, Buf: buf}, {FD: ps[1].fd, Buf: buf}}
		if err := r.SendAll(sends); err != nil {
			t.Fatal(err)
		}
		if sends[1].Err != nil || sends[1].N != len(buf) {
			t.Fatalf("the live socket: %d bytes, %v", sends[1].N, sends[1].Err)
		}
		dead = sends[0]
	}
	if !errors.Is(dead.Err, syscall.ECONNRESET) && !errors.Is(dead.Err, syscall.EPIPE) {
		t.Fatalf("send to a reset socket: %d bytes, %v; want ECONNRESET or EPIPE", dead.N, dead.Err)
	}
}

// A closed descriptor is an error of its send, not of the ring.
func TestSendAll_BadDescriptor(t *testing.T) {
	r := newRing(t, 8)
	sends := []uring.Send{{FD: 1 << 20, Buf: []byte("x")}}
	if err := r.SendAll(sends); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(sends[0].Err, syscall.EBADF) {
		t.Fatalf("got %v, want EBADF", sends[0].Err)
	}
}

// A ring that fails before the kernel takes the sends reports them as
// neither made (Done) nor in doubt (Lost): the caller sends them again.
func TestSendAll_BrokenRingMakesNothing(t *testing.T) {
	r, err := uring.New(8)
	if err != nil {
		t.Fatal(err)
	}
	ps := pairs(t, 3)
	sends := make([]uring.Send, len(ps))
	for i, p := range ps {
		sends[i] = uring.Send{FD: p.fd, Buf: []byte("hello"), Done: true, N: 99}
	}
	uring.Break(r)
	if err := r.SendAll(sends); err == nil {
		t.Fatal("SendAll on a broken ring: no error")
	}
	for i, s := range sends {
		if s.Done || s.Lost || s.N != 0 {
			t.Fatalf("send %d: done %v lost %v n %d; want none of them", i, s.Done, s.Lost, s.N)
		}
	}
	r.Close()
	// Nothing reached the peers: a byte now is the first they read.
	for _, p := range ps {
		p.send.Write([]byte("x"))
		b := make([]byte, 1)
		p.recv.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(p.recv, b); err != nil || b[0] != 'x' {
			t.Fatalf("peer read %q, %v; want the x sent after", b, err)
		}
	}
}
