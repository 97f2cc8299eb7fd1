package realtime_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/pentecost/pentecost/certs"
	pthttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/servertest"
)

// TestStalledListenerHoldsUpNobody: the fan-out writes listeners one
// after another on a few goroutines; a listener whose socket is full must
// not hold up the others behind it. With a write timeout far beyond the
// test's wait, a fan-out that waited for that socket would fail it.
func TestStalledListenerHoldsUpNobody(t *testing.T) {
	eachWritePath(t, func(t *testing.T, path func(*realtime.Server)) {
		e := newEnv(t, path, func(s *realtime.Server) {
			s.WriteTimeout = time.Hour
			s.WriteCoalesce = 0
			s.MaxFrameAge = 0 // see speakToAll
		})
		sess := e.createSession("alice")
		q := "sessionId=" + sess.ID + "&targetLanguage=en&audioFormat=binary"
		e.dial(q, dialOpts{noRead: true}) // never reads a byte
		// 400 frames of 32 KB overflow the stalled socket's buffers (a few MB).
		e.speakToAll(sess.ID, e.joinAll(q, 10), 400, 32<<10)
	})
}

// eachWritePath runs test with fan-out through io_uring, which must be
// available on the machines the tests run on (Linux), and with a write(2)
// per listener, the path where it is refused. path configures the server
// for the path.
func eachWritePath(t *testing.T, test func(t *testing.T, path func(*realtime.Server))) {
	t.Run("io_uring", func(t *testing.T) { test(t, func(s *realtime.Server) { s.NoIOURing = false }) })
	t.Run("write", func(t *testing.T) { test(t, func(s *realtime.Server) { s.NoIOURing = true }) })
}

// TestSluggishListenerGetsEverything: a listener that stops reading until
// its socket is full, and its queue holds the rest, then reads again gets
// every frame whole and in order: writes cut short where the socket filled
// go on from where they stopped.
func TestSluggishListenerGetsEverything(t *testing.T) {
	eachWritePath(t, func(t *testing.T, path func(*realtime.Server)) {
		e := newEnv(t, path, func(s *realtime.Server) {
			s.WriteTimeout = time.Hour
			s.MaxFrameAge = 0 // see speakToAll
		})
		sess := e.createSession("alice")
		q := "sessionId=" + sess.ID + "&targetLanguage=en&audioFormat=binary"
		slow := e.dial(q, dialOpts{noRead: true})
		// Fewer frames than the queue holds (500): none is dropped.
		const frames, size = 400, 32 << 10
		fast := e.dial(q)
		fast.expect("sessionJoined")
		sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
		sp.expect("speakerConnected")

		var wg sync.WaitGroup
		wg.Go(func() { receiveAll(t, fast, frames, size) })
		for i := 1; i <= frames; i++ {
			sp.sendBinary(audio(i, size))
		}
		wg.Wait() // every frame has been fanned out
		go slow.read()
		slow.expect("sessionJoined")
		receiveAll(t, slow, frames, size)
	})
}

// TestFanoutAcrossPasses: with more listeners than one pass goroutine
// takes, and coalescing always on, every listener gets every frame once,
// in order, including the held last ones.
func TestFanoutAcrossPasses(t *testing.T) {
	eachWritePath(t, func(t *testing.T, path func(*realtime.Server)) {
		e := newEnv(t, path, func(s *realtime.Server) {
			s.WriteCoalesce = 30 * time.Millisecond
			s.CoalesceAbove = 0
			s.MaxFrameAge = 0 // see speakToAll
		})
		sess := e.createSession("alice")
		q := "sessionId=" + sess.ID + "&targetLanguage=en&audioFormat=binary"
		// More listeners than one ring call sends (128).
		e.speakToAll(sess.ID, e.joinAll(q, 300), 30, 640)
		// The path asked for is the one taken: the other sent nothing.
		sends := e.fanoutSends()
		used, unused := "io_uring", "write"
		if e.Realtime.NoIOURing {
			used, unused = unused, used
		}
		if sends[used] < 300 || sends[unused] != 0 {
			t.Fatalf("fan-out sends by method %v: want %s only, at least one per listener", sends, used)
		}
	})
}

// fanoutSends returns pentecost_ws_fanout_sends_total by method.
func (e *env) fanoutSends() map[string]float64 {
	e.t.Helper()
	mfs, err := e.Registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "pentecost_ws_fanout_sends_total" {
			for _, m := range mf.GetMetric() {
				out[m.GetLabel()[0].GetValue()] = value(m)
			}
		}
	}
	return out
}

// TestFanoutOverTLS: listeners on TLS get every frame whole and in order
// while the fan-out writes plain TCP listeners raw: a TLS connection must
// never be written under its record layer.
func TestFanoutOverTLS(t *testing.T) {
	eachWritePath(t, func(t *testing.T, path func(*realtime.Server)) {
		local := certs.NewLocal(t.TempDir())
		if err := local.Open(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = local.Close() })
		pool := x509.NewCertPool()
		pool.AddCert(local.CA())
		e := &env{t: t, Server: servertest.Start(t,
			servertest.ConfigureAPI(func(s *pthttp.Server) { s.TLSConfig = local.TLSConfig() }),
			servertest.Configure(path, func(s *realtime.Server) {
				s.WriteCoalesce = 30 * time.Millisecond
				s.CoalesceAbove = 0
				s.MaxFrameAge = 0 // see speakToAll
			}))}
		if !strings.HasPrefix(e.WSURL, "wss://") {
			t.Fatalf("server not on TLS: %s", e.WSURL)
		}
		sess := e.createSession("alice")
		q := "sessionId=" + sess.ID + "&targetLanguage=en&audioFormat=binary"
		tc := dialOpts{tls: &tls.Config{RootCAs: pool}}
		// More listeners than one pass goroutine takes (passMin).
		ls := e.joinAll(q, 100, tc)
		for _, nc := range e.Conns() {
			if _, ok := nc.(*tls.Conn); !ok {
				t.Fatalf("server-side connection is a %T, not TLS", nc)
			}
		}
		e.speakToAll(sess.ID, ls, 30, 640, tc)
	})
}

// joinAll joins n listeners with query q.
func (e *env) joinAll(q string, n int, o ...dialOpts) []*client {
	e.t.Helper()
	ls := make([]*client, n)
	for i := range ls {
		ls[i] = e.dial(q, o...)
		ls[i].expect("sessionJoined")
	}
	return ls
}

// speakToAll connects alice as the speaker of session id, sends frames
// audio frames of size bytes and checks that every listener of ls gets
// them all, whole and in order. The frames go out as fast as the test
// can send them, far faster than real time: on a loaded machine (with
// -race) they can queue for seconds, so the tests turn MaxFrameAge off,
// or the server would rightly skip them as stale.
func (e *env) speakToAll(id string, ls []*client, frames, size int, o ...dialOpts) {
	e.t.Helper()
	sp := e.dial("sessionId="+id+"&token="+e.token("alice"), o...)
	sp.expect("speakerConnected")
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() { receiveAll(e.t, l, frames, size) })
	}
	for i := 1; i <= frames; i++ {
		sp.sendBinary(audio(i, size))
	}
	wg.Wait()
}

// fanoutWait is how long receiveAll waits for each frame: hundreds of
// listeners read under -race on a machine other jobs share.
const fanoutWait = 30 * time.Second

// receiveAll checks that l gets audio frames 1 to n of size bytes, whole
// and in order.
func receiveAll(t testing.TB, l *client, n, size int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		var m msg
		var ok bool
		select {
		case m, ok = <-l.in:
			if !ok {
				t.Errorf("frame %d: connection closed (code %d)", i, l.closeCode)
				return
			}
		case <-time.After(fanoutWait):
			t.Errorf("frame %d: none within %s", i, fanoutWait)
			return
		}
		if m.op != ws.OpBinary {
			if typ := m.typ(); typ == "audioSkipped" || typ == "streamGap" {
				t.Errorf("frame %d: %s %v", i, typ, m.m)
				return
			}
			i--
			continue
		}
		_, seq, _, data, err := realtime.DecodeBinaryAudio(m.data)
		if err != nil || seq != uint64(i) || !bytes.Equal(data, audio(i, size)) {
			t.Errorf("want frame %d, got seq %d (err %v)", i, seq, err)
			return
		}
	}
}
