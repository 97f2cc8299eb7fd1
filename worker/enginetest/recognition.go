package enginetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker/engine"
)

// chunk is how much audio RunStreamingRecognizer sends at once: 100 ms, as
// the pipeline does.
const chunk = engine.SampleRate / 10

// resultsWait bounds every wait for the engine: long enough for a slow
// machine, short enough that a hung stream fails the test rather than the
// whole run.
const resultsWait = 30 * time.Second

// RunStreamingRecognizer runs the cases every engine.StreamingRecognizer
// must pass. newRec returns a recogniser (a local fake of a service, or the
// service itself) and the language to stream; each case calls it afresh.
// The engine must hear want in audio, reporting at least one interim
// hypothesis before its final.
func RunStreamingRecognizer(t *testing.T, newRec func(t *testing.T) (engine.StreamingRecognizer, string), audio []int16, want string) {
	t.Helper()
	if len(audio) < 2*chunk {
		t.Fatalf("RunStreamingRecognizer needs at least %d samples of audio", 2*chunk)
	}

	t.Run("OK", func(t *testing.T) {
		rec, lang := newRec(t)
		if rec.Name() == "" {
			t.Error("Name is empty")
		}
		s := open(t, rec, lang)
		defer s.Close()
		send(t, s, audio)
		if err := s.CloseSend(); err != nil {
			t.Fatalf("CloseSend: %v", err)
		}
		hs := drain(t, s)
		if err := s.Err(); err != nil {
			t.Fatalf("Err after a normal end: %v", err)
		}
		var finals []string
		interimsFirst := false
		for i, h := range hs {
			checkHypothesis(t, i, h)
			if h.Final {
				finals = append(finals, h.Text)
			} else if len(finals) == 0 {
				interimsFirst = true
			}
		}
		if !interimsFirst {
			t.Errorf("no interim hypothesis before the first final: %+v", hs)
		}
		if got := strings.Join(strings.Fields(strings.Join(finals, " ")), " "); !strings.EqualFold(got, want) {
			t.Errorf("finals say %q, want %q", got, want)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close after the end: %v", err)
		}
		if err := s.Err(); err != nil {
			t.Errorf("Err after Close of an ended stream: %v", err)
		}
	})

	t.Run("CloseSendWithoutAudio", func(t *testing.T) {
		rec, lang := newRec(t)
		s := open(t, rec, lang)
		defer s.Close()
		if err := s.CloseSend(); err != nil {
			t.Fatalf("CloseSend: %v", err)
		}
		for _, h := range drain(t, s) {
			if h.Text != "" {
				t.Errorf("hypothesis %+v from no audio", h)
			}
		}
		if err := s.Err(); err != nil {
			t.Errorf("Err: %v", err)
		}
	})

	t.Run("SendAfterCloseSend", func(t *testing.T) {
		rec, lang := newRec(t)
		s := open(t, rec, lang)
		defer s.Close()
		send(t, s, audio[:chunk])
		if err := s.CloseSend(); err != nil {
			t.Fatalf("CloseSend: %v", err)
		}
		if err := s.CloseSend(); err != nil {
			t.Errorf("second CloseSend: %v", err)
		}
		if err := s.Send(audio[:chunk]); err == nil {
			t.Error("Send after CloseSend succeeded")
		}
		drain(t, s)
	})

	t.Run("CloseMidStream", func(t *testing.T) {
		rec, lang := newRec(t)
		s := open(t, rec, lang)
		send(t, s, audio[:2*chunk])
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		drain(t, s) // Results must close without CloseSend
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := s.Send(audio[:chunk]); err == nil {
			t.Error("Send after Close succeeded")
		}
	})

	t.Run("ContextCancelled", func(t *testing.T) {
		rec, lang := newRec(t)
		ctx, cancel := context.WithCancel(context.Background())
		s, err := rec.Stream(ctx, lang)
		if err != nil {
			cancel()
			t.Fatalf("Stream: %v", err)
		}
		defer s.Close()
		send(t, s, audio[:chunk])
		cancel()
		drain(t, s)
		if s.Err() == nil {
			t.Error("Err is nil after the context ended mid-stream")
		}
	})
}

func open(t *testing.T, rec engine.StreamingRecognizer, lang string) engine.RecognitionStream {
	t.Helper()
	s, err := rec.Stream(context.Background(), lang)
	if err != nil {
		t.Fatalf("Stream(%q): %v", lang, err)
	}
	return s
}

func send(t *testing.T, s engine.RecognitionStream, audio []int16) {
	t.Helper()
	for len(audio) > 0 {
		n := min(chunk, len(audio))
		if err := s.Send(audio[:n]); err != nil {
			t.Fatalf("Send: %v", err)
		}
		audio = audio[n:]
	}
}

// drain reads Results until it closes.
func drain(t *testing.T, s engine.RecognitionStream) []engine.Hypothesis {
	t.Helper()
	var hs []engine.Hypothesis
	timeout := time.After(resultsWait)
	for {
		select {
		case h, ok := <-s.Results():
			if !ok {
				return hs
			}
			hs = append(hs, h)
		case <-timeout:
			t.Fatalf("Results not closed after %v; got %+v", resultsWait, hs)
		}
	}
}

func checkHypothesis(t *testing.T, i int, h engine.Hypothesis) {
	t.Helper()
	if h.Stable < 0 || h.Stable > len(h.Text) {
		t.Errorf("hypothesis %d: Stable %d outside Text %q", i, h.Stable, h.Text)
	}
	if h.Final && h.Stable != len(h.Text) {
		t.Errorf("hypothesis %d: final with Stable %d, want len(Text) %d", i, h.Stable, len(h.Text))
	}
	if h.Stable > 0 && h.Stable < len(h.Text) && h.Text[h.Stable] != ' ' && h.Text[h.Stable-1] != ' ' {
		t.Errorf("hypothesis %d: Stable %d is not on a word boundary of %q", i, h.Stable, h.Text)
	}
	if h.Start < 0 || h.End < h.Start {
		t.Errorf("hypothesis %d: Start %v End %v", i, h.Start, h.End)
	}
}
