package bench

import (
	"math/bits"
	"time"
)

// Histogram records latencies with about 3 % precision from 1 µs to an hour
// in a fixed 3.5 KB array: recording is an index computation and an increment,
// with no allocation, because it runs once per delivery (hundreds of
// thousands per second in the generator). It is not safe for concurrent
// use; the benchmark keeps one per listener and merges them at the end.
type Histogram struct {
	counts [histBuckets]uint32
	n      uint64
	max    time.Duration
}

// Values below histSub µs get a bucket each; above, each power of two is
// split into histSub buckets (log-linear, like HdrHistogram).
const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histMaxBits = 32 // 2^32 µs is over an hour: later is recorded as that
	histBuckets = (histMaxBits - histSubBits + 1) * histSub
)

func histIndex(us uint64) int {
	if us < histSub {
		return int(us)
	}
	e := bits.Len64(us) - histSubBits // >= 1
	return e*histSub + int((us>>(e-1))&(histSub-1))
}

// histValue returns the upper bound, in µs, of bucket i.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := i / histSub
	m := uint64(i%histSub) | histSub
	return ((m + 1) << (e - 1)) - 1
}

// Record adds one latency. Negative values (clock steps) count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(min(uint64(d/time.Microsecond), 1<<histMaxBits-1))]++
	h.n++
	if d > h.max {
		h.max = d
	}
}

// Merge adds o's records to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count returns how many latencies were recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest latency recorded.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the latency below which a fraction q of the records lie
// (the bucket's upper bound, capped at Max).
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return min(time.Duration(histValue(i))*time.Microsecond, h.max)
		}
	}
	return h.max
}
