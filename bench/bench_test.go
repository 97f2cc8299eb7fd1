package bench_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	"github.com/pentecost/pentecost/bench"
	pthttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/inmem"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/sqlite"
	"github.com/prometheus/client_golang/prometheus"
)

// server starts a whole server on loopback (SQLite file, embedded issuer,
// in-memory presence and broker, the HTTP API with /metrics and /ws) and
// returns its URL and a speaker token.
func server(t *testing.T) (url, token string) {
	t.Helper()
	dir := t.TempDir()
	db := sqlite.NewDB(filepath.Join(dir, "pentecost.db"))
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	key, err := auth.LoadOrCreateKey(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	issuer := auth.NewEmbedded(key)
	verifier := auth.NewVerifier(issuer)
	reg := prometheus.NewRegistry()

	rt := realtime.NewServer()
	rt.Sessions, rt.Verifier = sqlite.NewSessionService(db), verifier
	rt.Presence, rt.Broker = inmem.NewPresence(), inmem.NewBroker()
	rt.RateLimiter = inmem.NewRateLimiter()
	rt.ConnectionLimit, rt.JoinLimit = pentecost.Limit{}, pentecost.Limit{} // one address opens everything
	rt.Registerer = reg
	if err := rt.Open(); err != nil {
		t.Fatal(err)
	}
	api := pthttp.NewServer()
	api.Addr = "127.0.0.1:0"
	api.Sessions, api.Verifier = rt.NotifyingSessions(rt.Sessions), verifier
	api.Registerer, api.Gatherer = reg, reg
	api.Handle("GET /ws", rt)
	if err := api.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rt.Close()
		_ = api.Close()
	})
	token, err = issuer.IssueToken(context.Background(), &pentecost.User{ID: "u1", Name: "u1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return api.URL(), token
}

func TestRun(t *testing.T) {
	url, token := server(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("OK", func(t *testing.T) {
		var progress strings.Builder
		r, err := bench.Run(ctx, bench.Config{
			URL: url, Token: token, Sessions: 1, Listeners: 5,
			Warmup: 200 * time.Millisecond, Duration: time.Second,
			// The in-process server is this process.
			ServerPID: os.Getpid(), ServerInProcess: true,
			Progress: &progress,
		})
		if err != nil {
			t.Fatal(err)
		}
		if r.ListenersJoined != 5 || r.JoinFailures != 0 {
			t.Fatalf("joined %d, failed %d (%s)", r.ListenersJoined, r.JoinFailures, r.JoinError)
		}
		// 1 s of 20 ms chunks is 50 chunks whatever the machine's speed: the
		// window is counted in the speaker's schedule, not in wall time.
		if r.FramesSent != 50 || r.SendErrors != 0 {
			t.Fatalf("sent %d chunks, %d errors; want 50, 0", r.FramesSent, r.SendErrors)
		}
		if r.DeliveriesExpected != 5*50 || r.DeliveriesReceived != r.DeliveriesExpected || r.DeliveryRatio != 1 {
			t.Fatalf("deliveries %d of %d (ratio %v); want 250 of 250", r.DeliveriesReceived, r.DeliveriesExpected, r.DeliveryRatio)
		}
		if r.ConnectionsLost != 0 || r.SequenceGaps != 0 {
			t.Fatalf("lost %d connections, %d sequence gaps", r.ConnectionsLost, r.SequenceGaps)
		}
		if r.FramesDropped == nil || *r.FramesDropped != 0 {
			t.Fatalf("frames dropped by the server: %v; want 0 read from /metrics", r.FramesDropped)
		}
		if r.LatencyMs.P50 <= 0 || r.LatencyMs.P50 > r.LatencyMs.P99 || r.LatencyMs.P99 > r.LatencyMs.Max {
			t.Fatalf("latency quantiles out of order: %+v", r.LatencyMs)
		}
		if r.Server.RSSBytes <= 0 {
			t.Fatalf("server RSS not read from /proc: %+v", r.Server)
		}
		var sb strings.Builder
		r.Summary(&sb)
		if !strings.Contains(sb.String(), "250 of 250") {
			t.Fatalf("summary does not show the deliveries:\n%s", sb.String())
		}
	})

	// Every listener implementation and protocol hears every chunk once.
	for _, c := range []struct {
		name         string
		json, client bool
	}{{"JSON", true, false}, {"ClientListeners", false, true}, {"ClientListenersJSON", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			r, err := bench.Run(ctx, bench.Config{
				URL: url, Token: token, Sessions: 2, Listeners: 3, JSON: c.json, ClientListeners: c.client,
				Warmup: 200 * time.Millisecond, Duration: 400 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			// 400 ms of 20 ms chunks is 20 per session, 6 listeners in all.
			if r.FramesSent != 40 || r.DeliveriesExpected != 120 || r.DeliveriesReceived != 120 || r.SequenceGaps != 0 || r.ConnectionsLost != 0 {
				t.Fatalf("sent %d, delivered %d of %d, %d gaps, %d lost; want 40, 120 of 120, 0, 0",
					r.FramesSent, r.DeliveriesReceived, r.DeliveriesExpected, r.SequenceGaps, r.ConnectionsLost)
			}
		})
	}

	// Opus: the fixture's packets every 100 ms, to listeners of Opus of
	// every kind, each packet known by its bytes; the bandwidth is the
	// packets and their headers.
	packets, err := bench.OpusFixture()
	if err != nil {
		t.Fatal(err)
	}
	var fixtureBytes int
	for _, p := range packets {
		fixtureBytes += len(p)
	}
	for _, c := range []struct {
		name         string
		json, client bool
	}{{"OKOpus", false, false}, {"OKOpusJSON", true, false}, {"OKOpusClientListeners", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			r, err := bench.Run(ctx, bench.Config{
				URL: url, Token: token, Sessions: 2, Listeners: 3, JSON: c.json, ClientListeners: c.client,
				Format: bench.FormatOpus, Warmup: 200 * time.Millisecond, Duration: time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			// 1 s of 100 ms packets is 10 per session, 6 listeners in all.
			if r.FramesSent != 20 || r.DeliveriesExpected != 60 || r.DeliveriesReceived != 60 || r.SequenceGaps != 0 || r.ConnectionsLost != 0 {
				t.Fatalf("sent %d, delivered %d of %d, %d gaps, %d lost; want 20, 60 of 60, 0, 0",
					r.FramesSent, r.DeliveriesReceived, r.DeliveriesExpected, r.SequenceGaps, r.ConnectionsLost)
			}
			if r.Format != bench.FormatOpus || r.ChunkMs != 100 || r.ChunkBytes != fixtureBytes/len(packets) {
				t.Fatalf("report says %s, %d B every %g ms", r.Format, r.ChunkBytes, r.ChunkMs)
			}
			if r.LatencyMs.P50 <= 0 || r.LatencyMs.P99 > r.LatencyMs.Max {
				t.Fatalf("latency %+v", r.LatencyMs)
			}
			if r.KbitPerListener == nil {
				t.Fatal("no bandwidth measured")
			}
			// Ten packets a second of the fixture's mean size, plus their
			// headers (binary: 20 bytes; JSON: base64 and the message's
			// fields, about 130 bytes).
			mean := float64(fixtureBytes) / float64(len(packets))
			low, high := (mean+20)*10*8/1000*0.6, (mean+20)*10*8/1000*1.6
			if c.json {
				low, high = (mean*4/3+100)*10*8/1000*0.6, (mean*4/3+160)*10*8/1000*1.6
			}
			if k := *r.KbitPerListener; k < low || k > high {
				t.Fatalf("%.1f kbit/s per listener, want %.1f-%.1f", k, low, high)
			}
		})
	}
	t.Run("OKPCMBandwidth", func(t *testing.T) {
		r, err := bench.Run(ctx, bench.Config{URL: url, Token: token, Sessions: 1, Listeners: 2,
			Warmup: 200 * time.Millisecond, Duration: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		// 50 chunks of 640 bytes and a 20-byte header each, a second.
		if r.KbitPerListener == nil || *r.KbitPerListener != 50*660*8/1000.0 {
			t.Fatalf("PCM bandwidth %v kbit/s per listener, want 264", r.KbitPerListener)
		}
	})
	t.Run("ErrOpusChunk", func(t *testing.T) {
		if _, err := bench.Run(ctx, bench.Config{URL: url, Token: token, Format: bench.FormatOpus, ChunkBytes: 640}); err == nil {
			t.Fatal("want an error for a chunk size with Opus")
		}
		if _, err := bench.Run(ctx, bench.Config{URL: url, Token: token, Format: "mp3"}); err == nil {
			t.Fatal("want an error for an unknown format")
		}
	})

	t.Run("ErrNoToken", func(t *testing.T) {
		if _, err := bench.Run(ctx, bench.Config{URL: url}); err == nil {
			t.Fatal("want an error without a token")
		}
	})

	t.Run("ErrBadChunk", func(t *testing.T) {
		if _, err := bench.Run(ctx, bench.Config{URL: url, Token: token, ChunkBytes: 50}); err == nil {
			t.Fatal("want an error for a 50-byte chunk")
		}
	})
}

func TestHistogram(t *testing.T) {
	var h bench.Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	if h.Count() != 1000 || h.Max() != time.Second {
		t.Fatalf("count %d, max %v", h.Count(), h.Max())
	}
	// Buckets are within about 3 % of the value.
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := h.Quantile(c.q)
		if got < c.want || float64(got) > 1.04*float64(c.want) {
			t.Errorf("q%.2f = %v, want %v within 4 %%", c.q, got, c.want)
		}
	}
	var o bench.Histogram
	o.Record(2 * time.Second)
	h.Merge(&o)
	if h.Count() != 1001 || h.Max() != 2*time.Second {
		t.Fatalf("after merge: count %d, max %v", h.Count(), h.Max())
	}
}
