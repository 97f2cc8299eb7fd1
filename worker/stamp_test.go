package worker

import (
	"context"
	"log/slog"
	"math"
	"reflect"
	"testing"
	"time"
)

func tone(d time.Duration) []int16 {
	out := make([]int16, int(d.Seconds()*SampleRate))
	for i := range out {
		out[i] = int16(8000 * math.Sin(2*math.Pi*300*float64(i)/SampleRate))
	}
	return out
}

func quiet(d time.Duration) []int16 { return make([]int16, int(d.Seconds()*SampleRate)) }

func TestTimeline(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	var tl timeline
	// Three 100 ms chunks, each stamped with when its last sample arrived.
	for i := range 3 {
		tl.add(1600, t0.Add(time.Duration(i+1)*100*time.Millisecond))
	}
	for _, tt := range []struct {
		offset int64
		want   time.Time
	}{
		{0, t0},
		{800, t0.Add(50 * time.Millisecond)},
		{1600, t0.Add(100 * time.Millisecond)},
		{4799, t0.Add(300*time.Millisecond - samplesDuration(1))},
	} {
		if got := tl.at(tt.offset); !got.Equal(tt.want) {
			t.Errorf("at(%d) = %v, want %v", tt.offset, got.Sub(t0), tt.want.Sub(t0))
		}
	}
	if got := tl.at(4800); !got.IsZero() {
		t.Errorf("at(end) = %v, want zero: not recorded yet", got)
	}
	// A long talk: the timeline keeps a bounded window and still answers
	// for recent audio.
	for i := 3; i < 3+20*60; i++ { // 2 minutes more
		tl.add(1600, t0.Add(time.Duration(i+1)*100*time.Millisecond))
	}
	if len(tl.chunks) > timelineKeep/1600+2 {
		t.Fatalf("timeline holds %d chunks", len(tl.chunks))
	}
	if got, want := tl.at(tl.total-1600), t0.Add(time.Duration(3+20*60-1)*100*time.Millisecond); !got.Equal(want) {
		t.Fatalf("recent offset at %v, want %v", got.Sub(t0), want.Sub(t0))
	}
}

func TestFrameSourceTime(t *testing.T) {
	start := time.UnixMilli(1_700_000_000_000)
	dur := 2 * time.Second
	n := 3 * SampleRate // the translation is longer than the speech
	prev := time.Time{}
	for off := 0; off < n; off += FrameSamples {
		got := frameSourceTime(start, dur, off, n)
		if got.Before(start) || !got.Before(start.Add(dur)) || got.Before(prev) {
			t.Fatalf("frame at %d: %v, outside the source span or going back", off, got.Sub(start))
		}
		prev = got
	}
	if got := frameSourceTime(start, dur, 0, n); !got.Equal(start) {
		t.Fatalf("first frame %v, want the utterance's start", got.Sub(start))
	}
	if got := frameSourceTime(start, dur, n/2, n); !got.Equal(start.Add(dur / 2)) {
		t.Fatalf("middle frame %v, want the middle of the speech", got.Sub(start))
	}
	if got := frameSourceTime(time.Time{}, dur, n/2, n); !got.IsZero() {
		t.Fatalf("unknown start gave %v", got)
	}
}

// TestSegmentStamps runs the per-utterance adapter on chunks stamped as
// the server stamps them: the hypothesis it gives places the utterance in
// the stream's audio, and the session's source audio turns that into the
// capture time of its first sample (pre-roll included) and the length of
// its speech.
func TestSegmentStamps(t *testing.T) {
	w := &Worker{VAD: *NewSegmenter(), Now: time.Now, Logger: slog.New(slog.DiscardHandler)}
	u := &utteranceStreamer{rec: stubEngine{name: "stub", text: "Let us pray."}, vad: w.newSegmenter}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs, err := u.Stream(ctx, "en")
	if err != nil {
		t.Fatal(err)
	}
	var src sourceAudio
	t0 := time.UnixMilli(1_700_000_000_000)
	var pcm []int16
	pcm = append(pcm, quiet(time.Second)...)
	pcm = append(pcm, tone(time.Second)...)
	pcm = append(pcm, quiet(time.Second)...)
	const chunk = 1600 // 100 ms, as browsers send
	for off := 0; off < len(pcm); off += chunk {
		end := min(off+chunk, len(pcm))
		src.add(pcm[off:end], t0.Add(samplesDuration(int64(end))), time.Now())
		if err := rs.Send(pcm[off:end]); err != nil {
			t.Fatal(err)
		}
	}
	var h Hypothesis
	select {
	case h = <-rs.Results():
	case <-time.After(10 * time.Second):
		t.Fatal("no hypothesis")
	}
	if !h.Final || h.Text != "Let us pray." {
		t.Fatalf("hypothesis %+v", h)
	}
	start, _, speech := src.span(durationSamples(h.Start), durationSamples(h.End))
	// Speech starts at 1 s; the pre-roll (200 ms) starts the utterance.
	if want := t0.Add(800 * time.Millisecond); !start.Equal(want) {
		t.Fatalf("utterance starts at %v, want %v", start.Sub(t0), want.Sub(t0))
	}
	if d := h.End - h.Start; d < time.Second || d > 1300*time.Millisecond || len(speech) != int(durationSamples(d)) {
		t.Fatalf("utterance lasts %v for %d samples", d, len(speech))
	}
}

type stubEngine struct{ name, text string }

func (e stubEngine) Name() string { return e.name }
func (e stubEngine) Recognize(context.Context, []int16, string) (string, error) {
	return e.text, nil
}
func (stubEngine) Translate(context.Context, string, string, string) (string, error) {
	return "", nil
}
func (stubEngine) Synthesize(context.Context, string, string) ([]int16, error) { return nil, nil }

// TestEnginesOffer lists exactly the pairs CanProduce accepts.
func TestEnginesOffer(t *testing.T) {
	e := stubEngine{name: "stub"}
	engines := &Engines{
		Recognizers:  map[string]Recognizer{"en": e, "es": e},
		Translators:  map[Pair]Translator{{"en", "gl"}: e, {"en", "es"}: e, {"en", "ca"}: e, {"es", "en"}: e, {"fr", "es"}: e, {"en", "de"}: e},
		Synthesizers: map[string]Synthesizer{"es": e, "ca": e, "gl": e, "en": e},
	}
	// No German voice, no French recogniser.
	want := map[string][]string{"en": {"ca", "es", "gl"}, "es": {"en"}}
	if got := engines.Offer(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Offer = %v, want %v", got, want)
	}
}
