package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost/bench"
)

func TestBench(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "report.json")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var stdout strings.Builder
		err := run(ctx, []string{"bench", "--in-process", "--sessions", "1", "--listeners", "5",
			"--warmup", "200ms", "--duration", "1s", "--out", out}, func(string) string { return "" }, nil, &stdout, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var r bench.Report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		if r.ListenersJoined != 5 || r.DeliveriesExpected != 250 || r.DeliveriesReceived != 250 || r.DeliveryRatio != 1 {
			t.Fatalf("joined %d, deliveries %d of %d (ratio %v); want 5, 250 of 250",
				r.ListenersJoined, r.DeliveriesReceived, r.DeliveriesExpected, r.DeliveryRatio)
		}
		if r.ConnectionsLost != 0 || !r.Server.InProcess || r.Server.PID != os.Getpid() {
			t.Fatalf("lost %d connections; server %+v", r.ConnectionsLost, r.Server)
		}
		if !strings.Contains(stdout.String(), "250 of 250") {
			t.Fatalf("summary missing:\n%s", stdout.String())
		}
	})

	// PCM against Opus, one round each: both reports, with the bandwidth
	// each listener took.
	t.Run("OKFormats", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "reports.json")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var stdout strings.Builder
		err := run(ctx, []string{"bench", "--in-process", "--sessions", "1", "--listeners", "3", "--format", "pcm,opus",
			"--rounds", "1", "--warmup", "200ms", "--duration", "1s", "--out", out}, func(string) string { return "" }, nil, &stdout, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var rs []bench.Report
		if err := json.Unmarshal(b, &rs); err != nil {
			t.Fatal(err)
		}
		if len(rs) != 2 || rs[0].Format != bench.FormatPCM || rs[1].Format != bench.FormatOpus {
			t.Fatalf("%d reports, want PCM then Opus", len(rs))
		}
		for _, r := range rs {
			// Both at 100 ms: 10 chunks or packets a second, to 3 listeners.
			if r.ChunkMs != 100 || r.DeliveriesExpected != 30 || r.DeliveriesReceived != 30 || r.KbitPerListener == nil {
				t.Fatalf("%s: %g ms chunks, deliveries %d of %d, bandwidth %v", r.Format, r.ChunkMs, r.DeliveriesReceived, r.DeliveriesExpected, r.KbitPerListener)
			}
		}
		// PCM: 3,200-byte chunks with 20-byte headers, 10 a second.
		if pcm, opus := *rs[0].KbitPerListener, *rs[1].KbitPerListener; pcm != 257.6 || opus > pcm/5 {
			t.Fatalf("kbit/s per listener: PCM %.1f, Opus %.1f", pcm, opus)
		}
		if !strings.Contains(stdout.String(), "kbit/s per listener") {
			t.Fatalf("comparison missing:\n%s", stdout.String())
		}
	})

	t.Run("ErrUsage", func(t *testing.T) {
		for _, args := range [][]string{
			{"bench", "--format", "mp3"},
			{"bench", "--format", "opus", "--chunk-ms", "20"},
			{"bench", "--format", "pcm,opus", "--sweep-listeners", "10"},
			{"bench", "--chunk-ms", "0"},
			{"bench", "--sweep-listeners", "10,x"},
			{"bench", "--sweep-listeners", "10", "--sweep-sessions", "2"},
			{"bench", "--url", "http://127.0.0.1:1"},
			{"bench", "--url", "http://example.org", "--token", "t"},
		} {
			var u usageError
			if err := run(context.Background(), args, func(string) string { return "" }, nil, io.Discard, io.Discard); !errors.As(err, &u) {
				t.Errorf("%v: got %v, want a usage error", args, err)
			}
		}
	})
}
