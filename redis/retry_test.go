package redis_test

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/redistest"
	"github.com/pentecost/pentecost/storetest"
)

// replyDropper is a loopback TCP proxy to a Redis server. Once armed, it
// passes on the next request that contains its marker, then closes that
// connection when the reply comes back instead of forwarding it: the
// command ran, but the client reads EOF, which go-redis retries on another
// connection.
type replyDropper struct {
	ln      net.Listener
	target  string
	marker  []byte
	armed   atomic.Bool
	dropped atomic.Int32
	wg      sync.WaitGroup
}

func startReplyDropper(t *testing.T, target, marker string) *replyDropper {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyDropper{ln: ln, target: target, marker: []byte(marker)}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.serve(c) })
		}
	})
	// Runs after the cleanup of DBs opened later, whose Close ends the
	// proxied connections.
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

// URL is a redis:// URL through the proxy.
func (p *replyDropper) URL() string { return "redis://" + p.ln.Addr().String() + "/0" }

// arm makes the proxy drop the reply to the next request with the marker.
func (p *replyDropper) arm() { p.armed.Store(true) }

func (p *replyDropper) serve(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	closeBoth := func() { c.Close(); s.Close() }
	var drop atomic.Bool
	p.wg.Go(func() { // server to client
		defer closeBoth()
		buf := make([]byte, 64<<10)
		for {
			n, err := s.Read(buf)
			if n > 0 && drop.Load() {
				p.dropped.Add(1)
				return
			}
			if n > 0 {
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	defer closeBoth()
	buf := make([]byte, 64<<10)
	var tail []byte // the end of the previous read, for a marker split in two
	for {
		n, err := c.Read(buf)
		if n > 0 {
			seen := append(tail, bytes.ToLower(buf[:n])...)
			// Set before the request reaches Redis, hence before its reply.
			if bytes.Contains(seen, p.marker) && p.armed.CompareAndSwap(true, false) {
				drop.Store(true)
			}
			tail = append([]byte(nil), seen[max(0, len(seen)-len(p.marker)):]...)
			if _, err := s.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// openThrough opens a DB whose connections go through p.
func openThrough(t *testing.T, p *replyDropper) *redis.DB {
	db := redis.NewDB(p.URL())
	db.Prefix = newPrefix()
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestBroker_PublishRetriedOnce loses the reply to a publish after the
// script ran: go-redis sends the script again, and the frame must still be
// numbered, stored and fanned out once.
func TestBroker_PublishRetriedOnce(t *testing.T) {
	srv := redistest.Start(t)
	proxy := startReplyDropper(t, srv.Addr(), "evalsha")
	db := openThrough(t, proxy)
	a := MustNewBroker(t, db)
	b := MustNewBroker(t, MustOpenDBPrefix(t, srv, nil, db.Prefix))
	key := pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "es"}

	// The first run loads the script: its EVALSHA fails with NOSCRIPT and
	// would not show the retry.
	publish(t, a, key, caption("one"))
	onB := subscribe(t, b, key)

	proxy.arm()
	f := caption("two")
	publish(t, a, key, f)
	if proxy.dropped.Load() != 1 {
		t.Fatalf("%d replies dropped, want 1: the test did not cause a retry", proxy.dropped.Load())
	}
	if f.Seq != 2 {
		t.Fatalf("retried publish numbered %d, want 2", f.Seq)
	}
	publish(t, a, key, caption("three"))

	got := onB.WaitForText(t, "three")
	storetest.WantSeqs(t, got, 2, 3)
	frames, pos, err := b.History(context.Background(), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pos.Last != 3 || len(frames) != 3 {
		t.Fatalf("history has %d frames, last %d; want 3, 3", len(frames), pos.Last)
	}
	for i, f := range frames {
		if want := []string{"one", "two", "three"}[i]; f.Text != want {
			t.Fatalf("frame %d = %q, want %q", f.Seq, f.Text, want)
		}
	}
}

// TestSessionService_CreateRetriedOnce loses the reply to a session's
// creation after the script stored it: the retry must not find the ID
// taken and create a second session under another ID.
func TestSessionService_CreateRetriedOnce(t *testing.T) {
	srv := redistest.Start(t)
	proxy := startReplyDropper(t, srv.Addr(), "evalsha")
	ss := redis.NewSessionService(openThrough(t, proxy))
	alice := pentecost.NewContextWithUser(context.Background(), &pentecost.User{ID: "alice"})

	// Load the script first (see TestBroker_PublishRetriedOnce).
	if err := ss.CreateSession(alice, &pentecost.Session{SourceLanguage: "en"}); err != nil {
		t.Fatal(err)
	}
	proxy.arm()
	sess := &pentecost.Session{SourceLanguage: "fr"}
	if err := ss.CreateSession(alice, sess); err != nil {
		t.Fatal(err)
	}
	if proxy.dropped.Load() != 1 {
		t.Fatalf("%d replies dropped, want 1: the test did not cause a retry", proxy.dropped.Load())
	}
	found, n, err := ss.FindSessions(context.Background(), pentecost.SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d sessions stored, want 2", n)
	}
	if found[0].ID != sess.ID {
		t.Fatalf("newest session stored is %q, CreateSession returned %q", found[0].ID, sess.ID)
	}
}
