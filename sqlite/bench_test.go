package sqlite_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/sqlite"
)

// reportLatency reports the median and 95th percentile of durations in
// milliseconds, the figures the issue sets targets for.
func reportLatency(b *testing.B, durations []time.Duration) {
	if len(durations) == 0 {
		return
	}
	slices.Sort(durations)
	at := func(p float64) float64 {
		i := min(int(p*float64(len(durations))), len(durations)-1)
		return float64(durations[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.95), "p95-ms")
}

// openBenchDB opens a database on the real clock: the benchmarks measure
// what a server would see.
func openBenchDB(b *testing.B) *sqlite.SessionService {
	db, _ := MustOpenDB(b)
	db.Now = time.Now
	return sqlite.NewSessionService(db)
}

func BenchmarkCreateSession(b *testing.B) {
	s := openBenchDB(b)
	ctx := as("alice")
	var durations []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := s.CreateSession(ctx, &pentecost.Session{SourceLanguage: "en"}); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	reportLatency(b, durations)
}

func BenchmarkFindSessionByID(b *testing.B) {
	s := openBenchDB(b)
	const stored = 1000
	ids := make([]string, stored)
	for i := range ids {
		ids[i] = MustCreateSession(b, s, "alice").ID
	}
	var durations []time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		if _, err := s.FindSessionByID(context.Background(), ids[i%stored]); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
		i++
	}
	reportLatency(b, durations)
}
