package realtime

import (
	"bufio"
	"context"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/inmem"
	"github.com/pentecost/pentecost/sqlite"
)

// tcpConns returns n server-side loopback connections whose peers read and
// discard everything, so writes cost what they cost in production.
func tcpConns(b testing.TB, s *Server, n int) []*conn {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	out := make([]*conn, n)
	for i := range out {
		peer, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		go func() { _, _ = io.Copy(io.Discard, peer) }()
		nc, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = peer.Close(); _ = nc.Close() })
		out[i] = s.newConn(nc, bufio.NewReaderSize(nc, 512), roleListener, i%2 == 0)
	}
	return out
}

func benchFrame() *pentecost.Frame {
	return &pentecost.Frame{Kind: pentecost.FrameAudio, Language: "en", Seq: 12345, Time: time.Now(), Data: make([]byte, 640)}
}

func BenchmarkEncodeJSONAudio(b *testing.B) {
	f := benchFrame()
	b.ReportAllocs()
	for b.Loop() {
		encodeJSONAudio("golden-eagle-427", f)
	}
}

func BenchmarkEncodeBinaryAudio(b *testing.B) {
	f := benchFrame()
	b.ReportAllocs()
	for b.Loop() {
		encodeBinaryAudio(f)
	}
}

// BenchmarkEnqueue measures queueing one shared frame on one connection,
// including the writer draining it.
func BenchmarkEnqueue(b *testing.B) {
	s := NewServer()
	s.QueueFrames = 1 << 30 // measure queueing, not dropping
	c := tcpConns(b, s, 1)[0]
	m := encodeBinaryAudio(benchFrame())
	b.ReportAllocs()
	for b.Loop() {
		c.enqueue(m)
	}
}

// BenchmarkFanout500 measures delivering one frame to 500 listeners (half
// JSON, half binary): one encoding per format and 500 enqueues.
func BenchmarkFanout500(b *testing.B) {
	s := NewServer()
	conns := tcpConns(b, s, 500)
	st := &hubStream{key: pentecost.StreamKey{SessionID: "golden-eagle-427", Language: "en"}, subs: map[*conn]*streamSub{},
		sess: &hubSession{hub: &hub{srv: s}}}
	for _, c := range conns {
		st.subs[c] = &streamSub{}
	}
	f := benchFrame()
	b.ReportAllocs()
	var seq uint64
	for b.Loop() {
		seq++
		g := *f
		// Stamped now, as a live frame is: a stale one takes the skip path.
		g.Seq, g.Time = seq, time.Now()
		st.deliver(&g)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(conns)), "ns/delivery")
}

// BenchmarkJoinLeave measures a listener joining and leaving a session's
// stream: presence, subscription with history lookup, and back.
func BenchmarkJoinLeave(b *testing.B) {
	s := NewServer()
	s.Presence, s.Broker = inmem.NewPresence(), inmem.NewBroker()
	db := sqlite.NewDB(filepath.Join(b.TempDir(), "pentecost.db"))
	if err := db.Open(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	s.Sessions = sqlite.NewSessionService(db) // the hub reads a session's state when it first sees it
	s.hub = newHub(s)
	ctx := context.Background()
	sess := &pentecost.Session{SourceLanguage: "en", QualityTier: pentecost.QualityStandard}
	uctx := pentecost.NewContextWithUser(ctx, &pentecost.User{ID: "u1", Name: "u1", Issuer: pentecost.EmbeddedIssuer})
	if err := s.Sessions.CreateSession(uctx, sess); err != nil {
		b.Fatal(err)
	}
	hold, err := s.hub.acquire(ctx, sess) // keeps the session in the hub, as its speaker would
	if err != nil {
		b.Fatal(err)
	}
	c := tcpConns(b, s, 1)[0]
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		c.id = "c-" + strconv.Itoa(i)
		if _, err := s.Presence.Join(ctx, pentecost.PresenceEntry{SessionID: sess.ID, ConnID: c.id, Language: "en"}, 500, false); err != nil {
			b.Fatal(err)
		}
		hs, _ := s.hub.acquire(ctx, sess)
		hs.mu.Lock()
		hs.listeners[c] = struct{}{}
		c.session, c.language = hs, "en"
		hs.mu.Unlock()
		if err := hs.subscribe(ctx, c, hs.key("en", c.codec), false, 0, "", nil); err != nil {
			b.Fatal(err)
		}
		s.leaveListener(c)
	}
	s.hub.release(hold)
}
