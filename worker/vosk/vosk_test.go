package vosk

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
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/enginetest"
)

const script = "the lord is my shepherd"

// speech is one second of a tone: the fakes do not listen, they count.
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
	if n := strings.Count(string(buf), "worker/vosk.(*stream)"); n > 0 {
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

func sendAll(t *testing.T, s engine.RecognitionStream, pcm []int16) {
	t.Helper()
	for len(pcm) > 0 {
		n := min(1600, len(pcm))
		if err := s.Send(pcm[:n]); err != nil {
			t.Fatalf("Send: %v", err)
		}
		pcm = pcm[n:]
	}
}

func TestStreamingRecognizer(t *testing.T) {
	enginetest.RunStreamingRecognizer(t, func(t *testing.T) (engine.StreamingRecognizer, string) {
		f := newFakeVosk(t, script, nil)
		t.Cleanup(func() { noLeaks(t) })
		return newRec(t, Config{URL: f.url()}), "en"
	}, speech(time.Second), script)
}

func TestFixtures(t *testing.T) {
	read := func(name string) []byte {
		p, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The client's messages are the recorded ones.
	if got, want := string(configMessage), string(read("config.json")); got != want {
		t.Errorf("config message %s, recorded %s", got, want)
	}
	if got, want := string(eofMessage), string(read("eof.json")); got != want {
		t.Errorf("eof message %s, recorded %s", got, want)
	}
	// The fake writes what the server writes.
	if got, want := voskPartial("the lord"), string(read("partial.json")); got != want {
		t.Errorf("fake partial\n%s\nrecorded\n%s", got, want)
	}
	if got, want := voskPartial(""), string(read("partial_empty.json")); got != want {
		t.Errorf("fake empty partial\n%s\nrecorded\n%s", got, want)
	}
	if got, want := voskFinal(nil), string(read("result_empty.json")); got != want {
		t.Errorf("fake empty final %s, recorded %s", got, want)
	}
	var rec struct{ Result []fakeWord }
	if err := json.Unmarshal(read("result.json"), &rec); err != nil {
		t.Fatal(err)
	}
	if got, want := voskFinal(rec.Result), string(read("result.json")); got != want {
		t.Errorf("fake final\n%s\nrecorded\n%s", got, want)
	}

	// The decoder reads every recorded shape.
	s := &stream{}
	for _, tc := range []struct {
		file string
		ok   bool
		want engine.Hypothesis
	}{
		{"partial_empty.json", false, engine.Hypothesis{}},
		{"partial.json", true, engine.Hypothesis{Text: "the lord"}},
		{"result.json", true, engine.Hypothesis{Text: "the lord", Final: true, Stable: 8, Start: 300 * time.Millisecond, End: 960 * time.Millisecond}},
		{"result_empty.json", false, engine.Hypothesis{}},
		{"partial.json", true, engine.Hypothesis{Text: "the lord"}},
		{"alternatives_empty.json", true, engine.Hypothesis{Final: true}}, // clears the interim
	} {
		h, ok, err := s.decode(read(tc.file))
		if err != nil || ok != tc.ok || h != tc.want {
			t.Errorf("%s: got %+v %v %v, want %+v %v", tc.file, h, ok, err, tc.want, tc.ok)
		}
	}
}

func TestStream(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		f := newFakeVosk(t, script, nil)
		s, err := newRec(t, Config{URL: f.url()}).Stream(context.Background(), "en")
		if err != nil {
			t.Fatal(err)
		}
		sendAll(t, s, speech(time.Second))
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		hs := collect(t, s)
		if err := s.Err(); err != nil {
			t.Fatalf("Err: %v", err)
		}
		// One interim per new word (repeats dropped), then the final.
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
		f := newFakeVosk(t, script, nil)
		r := newRec(t, Config{URLs: map[string]string{"es": f.url() + "/es", "en": f.url() + "/en"}})
		for _, lang := range []string{"es", "en"} {
			s, err := r.Stream(context.Background(), lang)
			if err != nil {
				t.Fatal(err)
			}
			s.CloseSend()
			collect(t, s)
			s.Close()
		}
		f.mu.Lock()
		paths, configs := f.paths, f.configs
		f.mu.Unlock()
		if strings.Join(paths, " ") != "/es /en" {
			t.Errorf("servers reached: %v", paths)
		}
		for _, c := range configs {
			var m struct {
				Config struct {
					SampleRate float64 `json:"sample_rate"`
					Words      int     `json:"words"`
				} `json:"config"`
			}
			if err := json.Unmarshal([]byte(c), &m); err != nil || m.Config.SampleRate != 16000 || m.Config.Words != 1 {
				t.Errorf("config %s", c)
			}
		}
		if len(configs) != 2 {
			t.Errorf("configs %v", configs)
		}
		_, err := r.Stream(context.Background(), "de")
		if c, _ := code(err); c != engine.ErrUnsupported {
			t.Errorf("Stream(de): %v, want %s", err, engine.ErrUnsupported)
		}
		if _, err := New(Config{}); err == nil {
			t.Error("New without a URL succeeded")
		}
		noLeaks(t)
	})

	t.Run("ErrUnavailable", func(t *testing.T) {
		for name, f := range map[string]*fakeVosk{
			"Dropped":    {dropAt: 3},
			"CloseFrame": {closeAt: 3},
		} {
			t.Run(name, func(t *testing.T) {
				f := newFakeVosk(t, script, f)
				s, err := newRec(t, Config{URL: f.url()}).Stream(context.Background(), "en")
				if err != nil {
					t.Fatal(err)
				}
				pcm := speech(time.Second)
				for i := 0; i < 10; i++ {
					if s.Send(pcm[:1600]) != nil {
						break // the drop may already be known
					}
				}
				hs := collect(t, s)
				if c, _ := code(s.Err()); c != engine.ErrUnavailable {
					t.Errorf("Err %v, want %s", s.Err(), engine.ErrUnavailable)
				}
				if len(hs) != 2 {
					t.Errorf("hypotheses before the drop: %+v", hs)
				}
				if c, _ := code(s.Send(pcm[:1600])); c != engine.ErrUnavailable {
					t.Errorf("Send after the drop: want the stream's error")
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
				f := newFakeVosk(t, script, &fakeVosk{status: http.StatusTooManyRequests, retryAfter: tc.header})
				_, err := newRec(t, Config{URL: f.url()}).Stream(context.Background(), "en")
				c, ra := code(err)
				if c != engine.ErrThrottled || ra < tc.min || ra > tc.max {
					t.Errorf("Stream: %v (RetryAfter %v), want %s with RetryAfter in [%v, %v]", err, ra, engine.ErrThrottled, tc.min, tc.max)
				}
			})
		}
	})

	t.Run("ErrRefused", func(t *testing.T) {
		f := newFakeVosk(t, script, &fakeVosk{status: http.StatusForbidden})
		_, err := newRec(t, Config{URL: f.url()}).Stream(context.Background(), "en")
		if c, _ := code(err); c != engine.ErrRefused {
			t.Errorf("Stream: %v, want %s", err, engine.ErrRefused)
		}
	})

	t.Run("ErrTimeout", func(t *testing.T) {
		t.Run("Stall", func(t *testing.T) {
			f := newFakeVosk(t, script, &fakeVosk{silentFrom: 3})
			s, err := newRec(t, Config{URL: f.url(), StallTimeout: 200 * time.Millisecond}).Stream(context.Background(), "en")
			if err != nil {
				t.Fatal(err)
			}
			sendAll(t, s, speech(300*time.Millisecond))
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
			f := newFakeVosk(t, script, &fakeVosk{silentFrom: 1})
			s, err := newRec(t, Config{URL: f.url(), StallTimeout: 200 * time.Millisecond}).Stream(context.Background(), "en")
			if err != nil {
				t.Fatal(err)
			}
			sendAll(t, s, speech(100*time.Millisecond))
			s.CloseSend()
			collect(t, s)
			if c, _ := code(s.Err()); c != engine.ErrTimeout {
				t.Errorf("Err %v, want %s", s.Err(), engine.ErrTimeout)
			}
			s.Close()
			noLeaks(t)
		})
		t.Run("IdleIsNotAStall", func(t *testing.T) {
			// Nothing sent, nothing owed: a pause in speech must not fail the
			// stream, however long the stall timeout's multiple.
			f := newFakeVosk(t, script, nil)
			s, err := newRec(t, Config{URL: f.url(), StallTimeout: 50 * time.Millisecond}).Stream(context.Background(), "en")
			if err != nil {
				t.Fatal(err)
			}
			sendAll(t, s, speech(100*time.Millisecond))
			<-s.Results() // the answer arrived: nothing is owed now
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
			f := newFakeVosk(t, script, &fakeVosk{silentFrom: 1})
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
		f := newFakeVosk(t, script, &fakeVosk{badAt: 2})
		s, err := newRec(t, Config{URL: f.url()}).Stream(context.Background(), "en")
		if err != nil {
			t.Fatal(err)
		}
		pcm := speech(time.Second)
		for i := 0; i < 10 && s.Send(pcm[:1600]) == nil; i++ {
		}
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
