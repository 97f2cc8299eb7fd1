package worker

import (
	"testing"
	"time"
)

// playFrames runs a pacer as stream.play does, on a simulated clock: each
// frame waits for its time, then leaves late by late(k) (the timer fired
// late, or the goroutine was not scheduled), then its publication takes
// publish(k). It returns when each frame left, and the clock at the end.
func playFrames(p *pacer, now time.Time, n int, late, publish func(k int) time.Duration) ([]time.Time, time.Time) {
	p.start(now)
	left := make([]time.Time, n)
	for k := range n {
		if d := p.wait(now); d > 0 {
			now = now.Add(d)
		}
		now = now.Add(late(k))
		left[k] = now
		now = now.Add(publish(k))
		p.sent(now)
	}
	return left, now
}

func none(int) time.Duration { return 0 }

// checkRealTime fails if any run of frames left faster than real time by
// more than slack: frames i..j need (j-i) frame durations between the
// first and the last.
func checkRealTime(t *testing.T, left []time.Time, slack time.Duration) {
	t.Helper()
	for i := range left {
		for j := i + 1; j < len(left); j++ {
			if gap, want := left[j].Sub(left[i]), time.Duration(j-i)*frameDuration-slack; gap < want {
				t.Fatalf("frames %d to %d left %v apart, want at least %v: faster than real time", i, j, gap, want)
			}
		}
	}
}

// TestPacer: frames never leave faster than real time, after a stall of
// any length (a late timer or a slow publication) nor between utterances;
// small lateness, as of any timer, is absorbed without delaying the
// schedule.
func TestPacer(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	stalls := []time.Duration{paceJitter + time.Millisecond, 10 * time.Millisecond, 19 * time.Millisecond,
		20 * time.Millisecond, 25 * time.Millisecond, 39 * time.Millisecond, 41 * time.Millisecond, 300 * time.Millisecond}
	for _, stall := range stalls {
		stalled := func(k int) time.Duration {
			if k == 5 {
				return stall
			}
			return 0
		}
		t.Run("OKLateTimer"+stall.String(), func(t *testing.T) {
			var p pacer
			left, _ := playFrames(&p, t0, 12, stalled, none)
			checkRealTime(t, left, 0)
		})
		t.Run("OKSlowPublish"+stall.String(), func(t *testing.T) {
			var p pacer
			left, _ := playFrames(&p, t0, 12, none, stalled)
			checkRealTime(t, left, 0)
		})
	}
	t.Run("OKJitterAbsorbed", func(t *testing.T) {
		// Every frame leaves up to paceJitter late: no frame leaves more
		// than paceJitter early against the frames before it, and the
		// schedule does not drift.
		var p pacer
		jitter := func(k int) time.Duration { return time.Duration(k%4) * paceJitter / 3 }
		const n = 500
		left, _ := playFrames(&p, t0, n, jitter, none)
		checkRealTime(t, left, paceJitter)
		if span, most := left[n-1].Sub(left[0]), (n-1)*frameDuration+paceJitter; span > most {
			t.Fatalf("%d frames took %v, want at most %v: the schedule drifted", n, span, most)
		}
	})
	t.Run("OKUtterancesFollow", func(t *testing.T) {
		// The next utterance is ready at once: it starts when the last
		// frame of the previous one has had its time, also after a stall.
		for _, stall := range stalls {
			var p pacer
			first, now := playFrames(&p, t0, 10, func(k int) time.Duration {
				if k == 9 {
					return stall
				}
				return 0
			}, none)
			second, _ := playFrames(&p, now, 10, none, none)
			checkRealTime(t, append(first, second...), 0)
		}
	})
	t.Run("OKIdleThenNow", func(t *testing.T) {
		// After a pause between utterances, the next starts at once.
		var p pacer
		_, now := playFrames(&p, t0, 10, none, none)
		later := now.Add(time.Minute)
		second, _ := playFrames(&p, later, 3, none, none)
		if !second[0].Equal(later) {
			t.Fatalf("first frame after a pause left at %v, want %v", second[0], later)
		}
	})
}
