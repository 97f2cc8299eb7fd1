package worker_test

import (
	"bytes"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker"
)

// The fuzz targets read what a speech server answers and what an engine
// configuration file says; their corpora are in testdata/fuzz.

// FuzzDecodeWAV: any bytes decode or fail without samples; decoded audio
// has a rate, no more samples than the bytes could hold, and survives
// EncodeWAV and DecodeWAV unchanged.
func FuzzDecodeWAV(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		samples, rate, err := worker.DecodeWAV(b)
		if err != nil {
			if samples != nil || rate != 0 {
				t.Fatalf("failed with %d samples at %d Hz", len(samples), rate)
			}
			return
		}
		if rate <= 0 {
			t.Fatalf("rate %d", rate)
		}
		if max := (len(b) - 44) / 2; len(samples) > max {
			t.Fatalf("%d samples from %d bytes", len(samples), len(b))
		}
		again, rate2, err := worker.DecodeWAV(worker.EncodeWAV(samples, rate))
		if err != nil || rate2 != rate || !slices.Equal(again, samples) {
			t.Fatalf("EncodeWAV then DecodeWAV: %d samples at %d Hz, %v; want %d at %d Hz", len(again), rate2, err, len(samples), rate)
		}
	})
}

// FuzzParseConfig: a configuration file parses or fails; a parsed one
// reads back the same when written out again, and the voice detector and
// cache settings it passes are ones the worker can run with: numbers that
// are numbers, no negative or overflowed durations.
func FuzzParseConfig(f *testing.F) {
	f.Fuzz(func(t *testing.T, file []byte) {
		c, err := worker.ParseConfig(bytes.NewReader(file))
		if err != nil {
			return
		}
		var out strings.Builder
		for k, v := range c {
			out.WriteString(k + "=" + v + "\n")
		}
		again, err := worker.ParseConfig(strings.NewReader(out.String()))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("written back as\n%s\nit reads %v, %v; want %v", out.String(), again, err, c)
		}
		for _, name := range c.Tiers() {
			if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz") != "" {
				t.Fatalf("tier %q", name)
			}
			if tc := c.Tier(name); tc == nil {
				t.Fatalf("tier %q has no configuration", name)
			}
		}
		if s, err := c.Segmenter(); err == nil {
			switch {
			case math.IsNaN(s.Threshold) || math.IsInf(s.Threshold, 0) || s.Threshold < 0:
				t.Fatalf("vad.threshold %q gives %v", c["vad.threshold"], s.Threshold)
			case s.Hangover < 0:
				t.Fatalf("vad.hangover_ms %q gives %v", c["vad.hangover_ms"], s.Hangover)
			case s.MaxUtterance < 2*time.Second:
				t.Fatalf("vad.max_utterance_seconds %q gives %v", c["vad.max_utterance_seconds"], s.MaxUtterance)
			}
		}
		if n, err := c.CacheSize(); err == nil && n < 0 {
			t.Fatalf("cache.size %q gives %d", c["cache.size"], n)
		}
	})
}
