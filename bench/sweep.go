package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
)

// RunOn starts a target, runs cfg against it and stops it.
func RunOn(ctx context.Context, cfg Config, start Starter) (*Report, error) {
	t, err := start(ctx)
	if err != nil {
		return nil, err
	}
	if t.Close != nil {
		defer t.Close()
	}
	cfg.URL, cfg.Token, cfg.ServerPID, cfg.ServerInProcess = t.URL, t.Token, t.PID, t.InProcess
	cfg.MetricsURL = ""
	cfg.Nodes, cfg.RedisPID = t.Nodes, t.RedisPID
	return Run(ctx, cfg)
}

// Sweep runs cfg once per value, with set applying the value (e.g. the
// number of listeners), each on a fresh target. each, when not nil, sees
// every report as it is made.
func Sweep(ctx context.Context, cfg Config, values []int, set func(c *Config, v int), label func(v int) string, start Starter, each func(*Report)) ([]*Report, error) {
	var out []*Report
	for _, v := range values {
		c := cfg
		set(&c, v)
		r, err := RunOn(ctx, c, start)
		if err != nil {
			return out, fmt.Errorf("%s: %w", label(v), err)
		}
		r.Label = label(v)
		out = append(out, r)
		if each != nil {
			each(r)
		}
	}
	return out, nil
}

// Comparison is the outcome of an A/B run: the same workload on two
// builds, alternating, so that a machine's drift affects both alike.
type Comparison struct {
	A, B []*Report
}

// Compare runs cfg rounds times on each of two targets, alternating A and B.
func Compare(ctx context.Context, cfg Config, a, b Starter, rounds int, each func(*Report)) (*Comparison, error) {
	return CompareSides(ctx, Side{cfg, a}, Side{cfg, b}, rounds, each)
}

// Side is one side of an A/B run: a workload and what it runs on.
type Side struct {
	Config Config
	Start  Starter
}

// CompareSides runs each side rounds times, alternating A and B: two
// builds with one workload (Compare), or one build with two workloads
// (PCM against Opus).
func CompareSides(ctx context.Context, a, b Side, rounds int, each func(*Report)) (*Comparison, error) {
	cmp := &Comparison{}
	for i := range max(rounds, 1) {
		for _, side := range []struct {
			name string
			Side
			out *[]*Report
		}{{"A", a, &cmp.A}, {"B", b, &cmp.B}} {
			r, err := RunOn(ctx, side.Config, side.Start)
			if err != nil {
				return cmp, fmt.Errorf("%s round %d: %w", side.name, i+1, err)
			}
			r.Label = fmt.Sprintf("%s#%d", side.name, i+1)
			*side.out = append(*side.out, r)
			if each != nil {
				each(r)
			}
		}
	}
	return cmp, nil
}

// comparedMetrics are the figures an A/B run reports, with how to read them.
var comparedMetrics = []struct {
	name string
	get  func(*Report) float64
}{
	{"latency p50 ms", func(r *Report) float64 { return r.LatencyMs.P50 }},
	{"latency p99 ms", func(r *Report) float64 { return r.LatencyMs.P99 }},
	{"delivery ratio", func(r *Report) float64 { return r.DeliveryRatio }},
	{"server CPU µs/delivery", func(r *Report) float64 { return r.Server.CPUMicrosPerDelivery }},
	{"server cores", func(r *Report) float64 { return r.Server.CPUCores }},
	{"server RSS MB", func(r *Report) float64 { return mb(r.Server.RSSBytes) }},
	{"kbit/s per listener", func(r *Report) float64 {
		if r.KbitPerListener == nil {
			return 0
		}
		return *r.KbitPerListener
	}},
	{"joins/s", func(r *Report) float64 { return r.JoinsPerSecond }},
}

func median(rs []*Report, get func(*Report) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = get(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// Write prints the medians of each side and their ratio B/A.
func (c *Comparison) Write(w io.Writer, nameA, nameB string) {
	fmt.Fprintf(w, "A = %s\nB = %s\n%d round(s) each, alternating; medians:\n\n", nameA, nameB, len(c.A))
	fmt.Fprintln(w, "| metric | A | B | B/A |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, m := range comparedMetrics {
		a, b := median(c.A, m.get), median(c.B, m.get)
		ratio := "-"
		if a != 0 {
			ratio = fmt.Sprintf("%.3f", b/a)
		}
		fmt.Fprintf(w, "| %s | %.3f | %.3f | %s |\n", m.name, a, b, ratio)
	}
}
