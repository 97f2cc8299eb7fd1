package http_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	phttp "github.com/pentecost/pentecost/http"
)

// The original system's targets were 2 s (create) and 500 ms (get) at p95.
// These benchmarks measure the whole path: HTTP on loopback, JSON, token
// verification and the SQLite store. Run:
//
//	go test -run '^$' -bench 'Session$' -benchtime 2000x ./http/

func BenchmarkHTTPCreateSession(b *testing.B) {
	ts := MustOpenServer(b, func(s *phttp.Server) { s.Limits = phttp.Limits{} })
	c := ts.Client(b, "speaker-1")
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := c.CreateSession(ctx, &pentecost.Session{SourceLanguage: "en"}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportPercentiles(b, lat)
}

func BenchmarkHTTPGetSession(b *testing.B) {
	ts := MustOpenServer(b, func(s *phttp.Server) { s.Limits = phttp.Limits{} })
	speaker := ts.Client(b, "speaker-1")
	ctx := context.Background()
	var ids []string
	for i := 0; i < 500; i++ {
		s := &pentecost.Session{SourceLanguage: "en"}
		if err := speaker.CreateSession(ctx, s); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	anon := ts.Client(b, "")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := anon.FindSessionByID(ctx, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	for _, p := range []int{50, 95, 99} {
		v := lat[(len(lat)-1)*p/100]
		b.ReportMetric(float64(v.Microseconds())/1000, fmt.Sprintf("p%d-ms", p))
	}
}
