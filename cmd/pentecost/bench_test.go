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

	t.Run("ErrUsage", func(t *testing.T) {
		for _, args := range [][]string{
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
