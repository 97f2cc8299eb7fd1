package worker

import "time"

// timeline remembers when the source audio of a session was captured, so
// that an utterance cut from it (by sample offset) can be placed in time
// and its translation stamped with it (publishAudio's sourceTimestamp):
// listeners then see the delay from the speaker's voice, not from the
// worker's output. Each chunk is recorded with the time the server gave it
// (its receive time, about capture plus the one-way network delay), taken
// as the time its last sample was captured. It is owned by one goroutine.
type timeline struct {
	chunks []chunkTime
	total  int64 // samples recorded
}

type chunkTime struct {
	end int64     // offset just past the chunk's last sample
	at  time.Time // when its last sample was captured
}

// timelineKeep bounds what a timeline remembers: more than the longest
// utterance (MaxUtterance, 12 s by default) plus its pre-roll.
const timelineKeep = 60 * SampleRate

// add records n samples captured up to at.
func (t *timeline) add(n int, at time.Time) {
	t.total += int64(n)
	t.chunks = append(t.chunks, chunkTime{end: t.total, at: at})
	// Forget chunks wholly older than timelineKeep samples, a few at a time.
	drop := 0
	for drop < len(t.chunks)-1 && t.chunks[drop].end < t.total-timelineKeep {
		drop++
	}
	if drop > 0 {
		t.chunks = append(t.chunks[:0], t.chunks[drop:]...)
	}
}

// at returns the capture time of the sample at offset, counting back from
// the end of the chunk that holds it at the sample rate (an offset before
// every remembered chunk counts back from the oldest); zero when nothing
// at or after offset was recorded.
func (t *timeline) at(offset int64) time.Time {
	for _, c := range t.chunks {
		if offset < c.end {
			return c.at.Add(-samplesDuration(c.end - offset))
		}
	}
	return time.Time{}
}

func samplesDuration(n int64) time.Duration {
	return time.Duration(n) * time.Second / SampleRate
}

// frameSourceTime stamps frame off (in samples) of a synthesised utterance
// of n samples that translates source speech starting at start and lasting
// dur. Frames map proportionally onto the source's span: the translation
// is rarely as long as the speech it translates, and stamping every frame
// with the utterance's start would make a listener's delay readout grow by
// the utterance's length within each sentence and jump back at the next.
// Mapped, the delay stays steady through a sentence, and the stamps rise
// monotonically within one and across utterances. Zero when start is.
func frameSourceTime(start time.Time, dur time.Duration, off, n int) time.Time {
	if start.IsZero() || n <= 0 {
		return start
	}
	return start.Add(time.Duration(float64(dur) * float64(off) / float64(n)))
}
