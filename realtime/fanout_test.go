package realtime_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/pentecost/pentecost/realtime"
)

// TestFanout: every listener of the source language hears every chunk, in
// order, byte for byte, in JSON and in binary mode.
func TestFanout(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	j := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
	j.expect("sessionJoined")
	b := e.dial("sessionId=" + sess.ID + "&targetLanguage=en&audioFormat=binary")
	b.expect("sessionJoined")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")

	const n = 50
	for i := 1; i <= n; i++ {
		if i%2 == 0 {
			sp.sendBinary(audio(i, 640))
		} else {
			sp.send(map[string]any{"action": "sendAudio", "sessionId": sess.ID, "audioData": base64.StdEncoding.EncodeToString(audio(i, 640))})
		}
	}
	for i := 1; i <= n; i++ {
		m := j.expect("audioData")
		got, _ := base64.StdEncoding.DecodeString(m.m["audioData"].(string))
		if !bytes.Equal(got, audio(i, 640)) || m.m["sequenceNumber"] != float64(i) || m.m["language"] != "en" {
			t.Fatalf("JSON frame %d: seq %v, %d bytes", i, m.m["sequenceNumber"], len(got))
		}
		var bm msg
		for bm = b.next(); bm.op != ws.OpBinary; bm = b.next() {
		}
		lang, seq, ts, data, err := realtime.DecodeBinaryAudio(bm.data)
		if err != nil || lang != "en" || seq != uint64(i) || ts <= 0 || !bytes.Equal(data, audio(i, 640)) {
			t.Fatalf("binary frame %d: lang %q seq %d err %v", i, lang, seq, err)
		}
	}
}

// TestListenerCount: 200 listeners joining and leaving concurrently, with
// duplicate disconnects, leave presence and the stored count exact.
func TestListenerCount(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	q := "sessionId=" + sess.ID + "&targetLanguage="
	langs := []string{"en", "es", "fr", "de"}

	const n = 200
	clients := make([]*client, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.dial(q + langs[i%len(langs)])
			c.expect("sessionJoined")
			clients[i] = c
		}()
	}
	wg.Wait()
	expectCount(t, e, sess.ID, n)

	// Half leave at once, some closing cleanly, some just dropping, some
	// both (a duplicate disconnect).
	for i := 0; i < n; i += 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 3 {
			case 0:
				clients[i].closeNormally()
			case 1:
				_ = clients[i].conn.Close()
			default:
				clients[i].closeNormally()
				_ = clients[i].conn.Close()
			}
		}()
	}
	// Meanwhile 50 more join.
	more := make([]*client, 50)
	for i := range more {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.dial(q + "en")
			c.expect("sessionJoined")
			more[i] = c
		}()
	}
	wg.Wait()
	expectCount(t, e, sess.ID, n/2+50)

	for _, c := range append(clients, more...) {
		_ = c.conn.Close()
	}
	expectCount(t, e, sess.ID, 0)
}

func expectCount(t *testing.T, e *env, id string, want int) {
	t.Helper()
	poll(t, fmt.Sprintf("presence count %d", want), func() bool {
		c, err := e.Presence.Counts(t.Context(), id)
		if err != nil || c.Total < 0 {
			t.Fatalf("counts: %v %v", c, err)
		}
		sum := 0
		for _, n := range c.ByLanguage {
			sum += n
		}
		return c.Total == want && sum == want
	})
	poll(t, fmt.Sprintf("HTTP listenerCount %d", want), func() bool { return e.httpListenerCount(id) == want })
}

// TestStalledListener: a listener that stops reading delays nobody else;
// every other listener gets every frame in order.
func TestStalledListener(t *testing.T) {
	// The queue (500) holds every frame sent, so healthy listeners can never
	// drop one however fast the test publishes; 32 KB chunks overflow the
	// stalled socket's kernel buffers, so its writer really blocks. The
	// frames go out faster than real time and can queue for seconds on a
	// loaded machine: MaxFrameAge off, or they would be skipped as stale.
	e := newEnv(t, func(s *realtime.Server) { s.MaxFrameAge = 0 })
	sess := e.createSession("alice")
	q := "sessionId=" + sess.ID + "&targetLanguage=en&audioFormat=binary"
	e.dial(q, dialOpts{noRead: true}) // never reads a byte
	const listeners, frames, size = 10, 400, 32 << 10
	ls := make([]*client, listeners)
	for i := range ls {
		ls[i] = e.dial(q)
		ls[i].expect("sessionJoined")
	}
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")

	sent := make([]time.Time, frames+1)
	var lat []time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= frames; i++ {
				m, err := l.nextBinary()
				if err != nil {
					t.Errorf("frame %d: %v", i, err)
					return
				}
				_, seq, _, data, err := realtime.DecodeBinaryAudio(m.data)
				if err != nil || seq != uint64(i) || !bytes.Equal(data, audio(i, size)) {
					t.Errorf("want frame %d, got seq %d (err %v)", i, seq, err)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(sent[i]))
				mu.Unlock()
			}
		}()
	}
	for i := 1; i <= frames; i++ {
		mu.Lock()
		sent[i] = time.Now()
		mu.Unlock()
		sp.sendBinary(audio(i, size))
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		t.Logf("with one stalled listener, %d deliveries: p50 %s, p99 %s, max %s",
			len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
	}
}

// TestWriteCoalesce: with coalescing always on, frames held for a later
// write still reach every listener, in order, including the last ones
// that no frame follows.
func TestWriteCoalesce(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) {
		s.WriteCoalesce = 200 * time.Millisecond
		s.CoalesceAbove = 0
	})
	sess := e.createSession("alice")
	ls := make([]*client, 3)
	for i := range ls {
		ls[i] = e.dial("sessionId=" + sess.ID + "&targetLanguage=en&audioFormat=binary")
		ls[i].expect("sessionJoined")
	}
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")

	const n = 7
	for i := 1; i <= n; i++ {
		sp.sendBinary(audio(i, 640))
	}
	for _, l := range ls {
		for i := 1; i <= n; i++ {
			var bm msg
			for bm = l.next(); bm.op != ws.OpBinary; bm = l.next() {
			}
			_, seq, _, data, err := realtime.DecodeBinaryAudio(bm.data)
			if err != nil || seq != uint64(i) || !bytes.Equal(data, audio(i, 640)) {
				t.Fatalf("frame %d: seq %d err %v", i, seq, err)
			}
		}
	}
}
