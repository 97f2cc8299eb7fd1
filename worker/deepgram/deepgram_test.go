package deepgram

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/enginetest"
)

const script = "the lord is my shepherd"

func speech(d time.Duration) []int16 {
	pcm := make([]int16, int(d.Seconds()*engine.SampleRate))
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*220*float64(i)/engine.SampleRate))
	}
	return pcm
}

func newRec(t *testing.T, c Config) *Recognizer {
	t.Helper()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.APIKey == "" {
		c.APIKey = "test-key"
	}
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// noLeaks fails when a stream goroutine outlives its stream's Close
// (Close waits for them, so none may be left).
func noLeaks(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	if n := strings.Count(string(buf), "worker/deepgram.(*stream)"); n > 0 {
		t.Errorf("%d stream goroutines still running:\n%s", n, buf)
	}
}

func code(err error) (string, time.Duration) {
	var e *engine.Error
	if errors.As(err, &e) {
		return e.Code, e.RetryAfter
	}
	return "", 0
}

func collect(t *testing.T, s engine.RecognitionStream) []engine.Hypothesis {
	t.Helper()
	var hs []engine.Hypothesis
	timeout := time.After(30 * time.Second)
	for {
		select {
		case h, ok := <-s.Results():
			if !ok {
				return hs
			}
			hs = append(hs, h)
		case <-timeout:
			t.Fatalf("Results not closed; got %+v", hs)
		}
	}
}

// sendUntilError sends d of audio in 100 ms chunks, stopping at the first
// error (a failure the stream may already know of).
func sendUntilError(s engine.RecognitionStream, d time.Duration) error {
	pcm := speech(d)
	for len(pcm) > 0 {
		n := min(1600, len(pcm))
		if err := s.Send(pcm[:n]); err != nil {
			return err
		}
		pcm = pcm[n:]
	}
	return nil
}

func open(t *testing.T, c Config) engine.RecognitionStream {
	t.Helper()
	s, err := newRec(t, c).Stream(context.Background(), "en")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStreamingRecognizer(t *testing.T) {
	enginetest.RunStreamingRecognizer(t, func(t *testing.T) (engine.StreamingRecognizer, string) {
		f := newFakeDeepgram(t, script, nil)
		t.Cleanup(func() { noLeaks(t) })
		return newRec(t, Config{URL: f.url()}), "en"
	}, speech(time.Second), script)
}

// keys lists the JSON object keys of v, recursively, as paths.
func keys(prefix string, v any, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			out[prefix+"."+k] = true
			keys(prefix+"."+k, e, out)
		}
	case []any:
		for _, e := range v {
			keys(prefix+"[]", e, out)
		}
	}
}

func shape(t *testing.T, p []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(p, &v); err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	keys("", v, m)
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestFixtures(t *testing.T) {
	read := func(name string) []byte {
		p, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got, want := string(closeStreamMessage), string(read("close_stream.json")); got != want {
		t.Errorf("CloseStream %s, recorded %s", got, want)
	}
	if got, want := string(keepAliveMessage), string(read("keep_alive.json")); got != want {
		t.Errorf("KeepAlive %s, recorded %s", got, want)
	}
	// The fake sends the recorded shapes.
	marshal := func(v any) []byte {
		p, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		file string
		fake []byte
	}{
		{"results_interim.json", marshal(results([]string{"the", "lord"}, 16000, false))},
		{"results_final.json", marshal(results([]string{"the"}, 16000, true))},
		{"metadata.json", marshal(metadata(16000))},
	} {
		if got, want := shape(t, tc.fake), shape(t, read(tc.file)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: fake's keys %v\nrecorded %v", tc.file, got, want)
		}
	}

	// The decoder reads every recorded Results shape.
	s := &stream{}
	for _, tc := range []struct {
		file string
		ok   bool
		want engine.Hypothesis
	}{
		{"results_silence.json", false, engine.Hypothesis{}},
		{"results_interim.json", true, engine.Hypothesis{Text: "the lord", Start: 300 * time.Millisecond, End: 960 * time.Millisecond}},
		{"results_interim.json", false, engine.Hypothesis{}}, // a repeat
		{"results_final.json", true, engine.Hypothesis{Text: "The Lord is my shepherd.", Final: true, Stable: 24, Start: 300 * time.Millisecond, End: 1800 * time.Millisecond}},
		{"results_silence.json", false, engine.Hypothesis{}},
	} {
		var m message
		if err := json.Unmarshal(read(tc.file), &m); err != nil || m.Type != "Results" {
			t.Fatalf("%s: %v %q", tc.file, err, m.Type)
		}
		h, ok, err := s.decode(&m)
		if err != nil || ok != tc.ok || (ok && h != tc.want) {
			t.Errorf("%s: got %+v %v %v, want %+v %v", tc.file, h, ok, err, tc.want, tc.ok)
		}
	}
	for file, typ := range map[string]string{"metadata.json": "Metadata", "utterance_end.json": "UtteranceEnd", "speech_started.json": "SpeechStarted"} {
		var m header
		if err := json.Unmarshal(read(file), &m); err != nil || m.Type != typ {
			t.Errorf("%s: %v %q", file, err, m.Type)
		}
	}
}

func TestStream(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f := newFakeDeepgram(t, script, nil)
		s := open(t, Config{URL: f.url()})
		if err := sendUntilError(s, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		hs := collect(t, s)
		if err := s.Err(); err != nil {
			t.Fatalf("Err: %v", err)
		}
		want := []engine.Hypothesis{{Text: "the"}, {Text: "the lord"}, {Text: "the lord is"}, {Text: "the lord is my"}, {Text: script},
			{Text: script, Final: true, Stable: len(script), Start: 300 * time.Millisecond, End: 1800 * time.Millisecond}}
		if len(hs) != len(want) {
			t.Fatalf("got %+v\nwant %+v", hs, want)
		}
		for i := range want {
			if hs[i].Text != want[i].Text || hs[i].Final != want[i].Final || hs[i].Stable != want[i].Stable ||
				(want[i].Final && (hs[i].Start.Round(time.Millisecond) != want[i].Start || hs[i].End.Round(time.Millisecond) != want[i].End)) {
				t.Errorf("hypothesis %d: %+v, want %+v", i, hs[i], want[i])
			}
		}
		s.Close()
		noLeaks(t)
	})

	t.Run("Settings", func(t *testing.T) {
		f := newFakeDeepgram(t, script, nil)
		r := newRec(t, Config{URL: f.url(), APIKey: "sekrit", Model: "nova-2", Languages: map[string]string{"en": "en-US"}})
		for _, lang := range []string{"en", "es"} {
			s, err := r.Stream(context.Background(), lang)
			if err != nil {
				t.Fatal(err)
			}
			s.CloseSend()
			collect(t, s)
			s.Close()
		}
		f.mu.Lock()
		qs, auths := f.queries, f.auths
		f.mu.Unlock()
		for i, lang := range []string{"en-US", "es"} {
			want := map[string]string{"encoding": "linear16", "sample_rate": "16000", "channels": "1", "interim_results": "true",
				"punctuate": "true", "model": "nova-2", "language": lang}
			for k, v := range want {
				if got := qs[i].Get(k); got != v {
					t.Errorf("stream %d: %s=%q, want %q", i, k, got, v)
				}
			}
			if auths[i] != "Token sekrit" {
				t.Errorf("stream %d: Authorization %q", i, auths[i])
			}
		}
		if _, err := New(Config{}); err == nil {
			t.Error("New without an API key for the hosted endpoint succeeded")
		}
		if _, err := New(Config{URL: "http://example.com", APIKey: "k"}); err == nil {
			t.Error("New with an http URL succeeded")
		}
		noLeaks(t)
	})

	t.Run("KeepAlive", func(t *testing.T) {
		f := newFakeDeepgram(t, script, nil)
		s := open(t, Config{URL: f.url(), KeepAlive: 20 * time.Millisecond})
		select {
		case <-f.keepAlives:
		case <-time.After(30 * time.Second):
			t.Fatal("no KeepAlive while no audio was sent")
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		collect(t, s)
		if err := s.Err(); err != nil {
			t.Errorf("Err %v", err)
		}
		s.Close()
		noLeaks(t)
	})

	t.Run("ErrUnavailable", func(t *testing.T) {
		for name, f := range map[string]*fakeDeepgram{
			"Dropped":  {dropAt: 3},
			"NET-0000": {closeAt: 3, closeCode: ws.StatusInternalServerError, closeReason: "NET-0000"},
			"Normal":   {closeAt: 3, closeCode: ws.StatusNormalClosure}, // before CloseSend: not an end
		} {
			t.Run(name, func(t *testing.T) {
				f := newFakeDeepgram(t, script, f)
				s := open(t, Config{URL: f.url()})
				sendErr := sendUntilError(s, time.Second)
				hs := collect(t, s)
				if c, _ := code(s.Err()); c != engine.ErrUnavailable {
					t.Errorf("Err %v, want %s", s.Err(), engine.ErrUnavailable)
				}
				if sendErr != nil && sendErr != s.Err() {
					t.Errorf("Send failed with %v, not the stream's error %v", sendErr, s.Err())
				}
				if len(hs) != 2 {
					t.Errorf("hypotheses before the drop: %+v", hs)
				}
				s.Close()
				noLeaks(t)
			})
		}
		t.Run("NoServer", func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			_, err = newRec(t, Config{URL: "ws://" + addr}).Stream(context.Background(), "en")
			if c, _ := code(err); c != engine.ErrUnavailable {
				t.Errorf("Stream: %v, want %s", err, engine.ErrUnavailable)
			}
		})
	})

	t.Run("ErrRefused", func(t *testing.T) {
		t.Run("Handshake401", func(t *testing.T) {
			f := newFakeDeepgram(t, script, &fakeDeepgram{status: http.StatusUnauthorized})
			_, err := newRec(t, Config{URL: f.url()}).Stream(context.Background(), "en")
			if c, _ := code(err); c != engine.ErrRefused {
				t.Errorf("Stream: %v, want %s", err, engine.ErrRefused)
			}
		})
		t.Run("DATA-0000", func(t *testing.T) {
			f := newFakeDeepgram(t, script, &fakeDeepgram{closeAt: 1, closeCode: ws.StatusPolicyViolation, closeReason: "DATA-0000"})
			s := open(t, Config{URL: f.url()})
			sendUntilError(s, 200*time.Millisecond)
			collect(t, s)
			if c, _ := code(s.Err()); c != engine.ErrRefused {
				t.Errorf("Err %v, want %s", s.Err(), engine.ErrRefused)
			}
			s.Close()
			noLeaks(t)
		})
	})

	t.Run("ErrThrottled", func(t *testing.T) {
		for name, tc := range map[string]struct {
			header   string
			min, max time.Duration
		}{
			"Seconds":  {"7", 7 * time.Second, 7 * time.Second},
			"HTTPDate": {time.Now().Add(120 * time.Second).UTC().Format(http.TimeFormat), 100 * time.Second, 120 * time.Second},
			"None":     {"", 0, 0},
		} {
			t.Run(name, func(t *testing.T) {
				f := newFakeDeepgram(t, script, &fakeDeepgram{status: http.StatusTooManyRequests, retryAfter: tc.header})
				_, err := newRec(t, Config{URL: f.url()}).Stream(context.Background(), "en")
				c, ra := code(err)
				if c != engine.ErrThrottled || ra < tc.min || ra > tc.max {
					t.Errorf("Stream: %v (RetryAfter %v), want %s with RetryAfter in [%v, %v]", err, ra, engine.ErrThrottled, tc.min, tc.max)
				}
			})
		}
	})

	t.Run("ErrTimeout", func(t *testing.T) {
		t.Run("Stall", func(t *testing.T) {
			f := newFakeDeepgram(t, script, &fakeDeepgram{silentFrom: 3})
			s := open(t, Config{URL: f.url(), StallTimeout: 200 * time.Millisecond})
			sendUntilError(s, 3*time.Second) // more than stallSlack unanswered
			hs := collect(t, s)
			if c, _ := code(s.Err()); c != engine.ErrTimeout {
				t.Errorf("Err %v, want %s", s.Err(), engine.ErrTimeout)
			}
			if len(hs) != 2 {
				t.Errorf("hypotheses before the stall: %+v", hs)
			}
			s.Close()
			noLeaks(t)
		})
		t.Run("StallAfterCloseSend", func(t *testing.T) {
			f := newFakeDeepgram(t, script, &fakeDeepgram{silentFrom: 2})
			s := open(t, Config{URL: f.url(), StallTimeout: 200 * time.Millisecond})
			sendUntilError(s, 100*time.Millisecond)
			s.CloseSend()
			collect(t, s)
			if c, _ := code(s.Err()); c != engine.ErrTimeout {
				t.Errorf("Err %v, want %s", s.Err(), engine.ErrTimeout)
			}
			s.Close()
			noLeaks(t)
		})
		t.Run("PauseIsNotAStall", func(t *testing.T) {
			f := newFakeDeepgram(t, script, nil)
			s := open(t, Config{URL: f.url(), StallTimeout: 50 * time.Millisecond, KeepAlive: -1})
			sendUntilError(s, 100*time.Millisecond)
			<-s.Results()
			idle := time.NewTimer(250 * time.Millisecond)
			select {
			case h, ok := <-s.Results():
				t.Fatalf("while idle: %+v %v, Err %v", h, ok, s.Err())
			case <-idle.C:
			}
			if err := s.CloseSend(); err != nil {
				t.Fatal(err)
			}
			collect(t, s)
			if err := s.Err(); err != nil {
				t.Errorf("Err %v", err)
			}
			s.Close()
			noLeaks(t)
		})
		t.Run("ContextDeadline", func(t *testing.T) {
			f := newFakeDeepgram(t, script, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			s, err := newRec(t, Config{URL: f.url()}).Stream(ctx, "en")
			if err != nil {
				t.Fatal(err)
			}
			collect(t, s)
			if c, _ := code(s.Err()); c != engine.ErrTimeout {
				t.Errorf("Err %v, want %s", s.Err(), engine.ErrTimeout)
			}
			s.Close()
			noLeaks(t)
		})
	})

	t.Run("ErrBadResponse", func(t *testing.T) {
		f := newFakeDeepgram(t, script, &fakeDeepgram{badAt: 2})
		s := open(t, Config{URL: f.url()})
		sendUntilError(s, time.Second)
		hs := collect(t, s)
		if c, _ := code(s.Err()); c != engine.ErrBadResponse {
			t.Errorf("Err %v, want %s", s.Err(), engine.ErrBadResponse)
		}
		if len(hs) != 1 {
			t.Errorf("hypotheses before the bad one: %+v", hs)
		}
		s.Close()
		noLeaks(t)
	})
}
