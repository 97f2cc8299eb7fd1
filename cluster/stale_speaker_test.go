package cluster_test

import (
	"testing"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/redistest"
)

const stalePublish = `pentecost_stale_frames_skipped_total{delivery="publish"}`

// TestStale_SpeakerNodeLinkFrozen freezes the speaker's node's link to
// Redis for three times the maximum frame age while the speaker talks in
// real time: no reset, its publishes (and heartbeat rate limits) hang for
// go-redis's read timeouts. Listeners on that node and on another (with
// its own link) hear nothing later than the bound after the speaker sent
// it, and live audio once the link is back. Before, the speaker's reader
// published: it hung with the publish, the chunks waited in its socket,
// and when the link came back they were read at once, stamped as just
// received, and heard 6 s late in a burst. Now the reader goes on, and the
// node drops what is stale before publishing, and counts it.
func TestStale_SpeakerNodeLinkFrozen(t *testing.T) {
	srv := redistest.Start(t)
	token := mintToken(t, srv.URL(), "speaker")
	link := startGate(t, srv.Addr())
	a := startNode(t, "A", "redis://"+link.addr()+"/0")
	b := startNode(t, "B", srv.URL())
	// speak's, but with heartbeats during the stall (within the limit of
	// 10 a minute): a heartbeat's rate limit is a round trip to Redis too.
	sp := client.NewSpeaker(a.url, token)
	sp.SourceLanguage = "en"
	sp.MinBackoff, sp.MaxBackoff = 50*time.Millisecond, 500*time.Millisecond
	sp.HeartbeatInterval = 1500 * time.Millisecond
	if err := sp.Open(ctx(t, 10*time.Second)); err != nil {
		t.Fatalf("speaker on A: %v", err)
	}
	t.Cleanup(func() { sp.Close() })
	id := sp.Session()
	onA := listenTimed(t, "listener on A", a.url, id)
	onB := listenTimed(t, "listener on B", b.url, id)

	p := startPaced(t, sp)
	waitFor(t, 10*time.Second, "a second of audio on A and B", func() bool { return onA.heard() >= 50 && onB.heard() >= 50 })
	before := metricValue(t, a, stalePublish)
	link.freeze()
	time.Sleep(outage) // A's publishes hang meanwhile
	link.restore()
	back := time.Now()
	for _, tl := range []*timedListener{onA, onB} {
		waitFor(t, 15*time.Second, tl.name+" hearing live audio again", func() bool {
			return tl.heardSince(p, back.Add(maxAge))
		})
	}
	p.halt()

	for _, tl := range []*timedListener{onA, onB} {
		worst := tl.checkLateness(t, p)
		t.Logf("%s: %d chunks of %d sent, heard at most %v after sending; skips %+v",
			tl.name, len(tl.got), p.count(), worst.Round(time.Millisecond), tl.skips())
	}
	// The chunks of the stall's first (outage - bound) are stale when the
	// link is back: 200 of 20 ms; half of that allows for ticks a loaded
	// machine's speaker missed.
	want := float64((outage - maxAge) / (20 * time.Millisecond) / 2)
	if got := metricValue(t, a, stalePublish) - before; got < want {
		t.Errorf("%s on A grew by %v, want at least %v", stalePublish, got, want)
	}
	if got := metricValue(t, b, stalePublish); got != 0 {
		t.Errorf("%s on B = %v, want 0 (no speaker there)", stalePublish, got)
	}
}
