package awsstream_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/transcribestreaming"

	"github.com/pentecost/pentecost/worker/awsstream"
	"github.com/pentecost/pentecost/worker/awsstream/awsfake"
	"github.com/pentecost/pentecost/worker/engine"
)

// newRecognizer starts a fake serving handle and a recogniser talking to it.
func newRecognizer(t *testing.T, handle func(c *awsfake.Conn)) (*awsstream.Recognizer, *awsfake.Transcribe) {
	t.Helper()
	f := awsfake.NewTranscribe(handle)
	t.Cleanup(f.Close)
	cfg := f.Config()
	cfg.RetryMaxAttempts = 1
	return awsstream.New(cfg), f
}

func fixtures(t *testing.T, name string) []awsfake.Fixture {
	t.Helper()
	fs, err := awsfake.LoadFixtures(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func code(err error) string {
	var e *engine.Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return "not an engine.Error: " + err.Error()
}

// drain reads the stream's results until they close.
func drain(t *testing.T, s engine.RecognitionStream) []engine.Hypothesis {
	t.Helper()
	var hs []engine.Hypothesis
	timeout := time.After(10 * time.Second)
	for {
		select {
		case h, ok := <-s.Results():
			if !ok {
				return hs
			}
			hs = append(hs, h)
		case <-timeout:
			t.Fatal("results did not close")
		}
	}
}

var speech = make([]int16, engine.SampleRate/2) // 500 ms

func TestStream(t *testing.T) {
	t.Run("PartialStableFinal", func(t *testing.T) {
		flow := fixtures(t, "flow.json")
		r, f := newRecognizer(t, func(c *awsfake.Conn) {
			got := 0
			for b := range c.Audio() {
				got += len(b)
				if got >= 2*len(speech) {
					break
				}
			}
			for _, m := range flow {
				if err := c.Send(m.Message()); err != nil {
					return
				}
			}
			c.WaitEnd()
		})
		s, err := r.Stream(t.Context(), "en")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Send(speech); err != nil {
			t.Fatal(err)
		}
		var hs []engine.Hypothesis
		for len(hs) < 3 {
			h, ok := <-s.Results()
			if !ok {
				t.Fatalf("results closed after %v: %v", hs, s.Err())
			}
			hs = append(hs, h)
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if rest := drain(t, s); len(rest) != 0 {
			t.Fatalf("unexpected hypotheses after the final: %v", rest)
		}
		if err := s.Err(); err != nil {
			t.Fatalf("Err = %v, want nil", err)
		}
		want := []engine.Hypothesis{
			{Text: "Good", Stable: 0, Start: 250 * time.Millisecond, End: 610 * time.Millisecond},
			{Text: "Good morning every", Stable: len("Good morning"), Start: 250 * time.Millisecond, End: 1410 * time.Millisecond},
			{Text: "Good morning everyone.", Final: true, Stable: len("Good morning everyone."), Start: 250 * time.Millisecond, End: 1620 * time.Millisecond},
		}
		for i := range want {
			if hs[i] != want[i] {
				t.Errorf("hypothesis %d = %+v, want %+v", i, hs[i], want[i])
			}
		}
		c := f.Conns()[0]
		for h, v := range map[string]string{
			"X-Amzn-Transcribe-Language-Code":                        "en-US",
			"X-Amzn-Transcribe-Sample-Rate":                          "16000",
			"X-Amzn-Transcribe-Media-Encoding":                       "pcm",
			"X-Amzn-Transcribe-Enable-Partial-Results-Stabilization": "true",
			"X-Amzn-Transcribe-Partial-Results-Stability":            "medium",
		} {
			if got := c.Request.Header.Get(h); got != v {
				t.Errorf("%s = %q, want %q", h, got, v)
			}
		}
		if c.Request.ProtoMajor != 2 {
			t.Errorf("request over %s, want HTTP/2", c.Request.Proto)
		}
		if c.Signed() == 0 {
			t.Error("no signed input frame")
		}
		if err := c.DecodeErr(); err != nil {
			t.Errorf("fake could not decode the input: %v", err)
		}
	})

	t.Run("CloseSendEndsCleanly", func(t *testing.T) {
		ended := make(chan bool, 1)
		r, _ := newRecognizer(t, func(c *awsfake.Conn) {
			c.Accept()
			ended <- c.WaitEnd()
		})
		s, err := r.Stream(t.Context(), "es")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(speech[:1600]); err != nil {
			t.Fatal(err)
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if hs := drain(t, s); len(hs) != 0 {
			t.Fatalf("hypotheses %v", hs)
		}
		if err := s.Err(); err != nil {
			t.Fatalf("Err = %v", err)
		}
		if !<-ended {
			t.Fatal("input did not end with the empty signed frame")
		}
	})

	t.Run("Close", func(t *testing.T) {
		r, _ := newRecognizer(t, func(c *awsfake.Conn) {
			c.Accept()
			<-c.Request.Context().Done()
		})
		s, err := r.Stream(t.Context(), "en")
		if err != nil {
			t.Fatal(err)
		}
		s.Send(speech)
		s.Close()
		drain(t, s)
		if err := s.Err(); err != nil {
			t.Fatalf("Err after Close = %v, want nil", err)
		}
		if err := s.Send(speech); err == nil {
			t.Fatal("Send after Close succeeded")
		}
	})

	t.Run("Exceptions", func(t *testing.T) {
		want := map[string]string{
			"LimitExceededException":      engine.ErrThrottled,
			"ThrottlingException":         engine.ErrThrottled,
			"BadRequestException":         engine.ErrRefused,
			"ServiceUnavailableException": engine.ErrUnavailable,
			"InternalFailureException":    engine.ErrUnavailable,
		}
		for _, fx := range fixtures(t, "exceptions.json") {
			ex := fx.Headers[":exception-type"]
			t.Run(ex, func(t *testing.T) {
				r, _ := newRecognizer(t, func(c *awsfake.Conn) {
					<-c.Audio()
					c.Send(fx.Message())
				})
				s, err := r.Stream(t.Context(), "en")
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				s.Send(speech)
				drain(t, s)
				if got := code(s.Err()); got != want[ex] {
					t.Fatalf("code = %q (%v), want %q", got, s.Err(), want[ex])
				}
			})
		}
	})

	t.Run("RefusedBeforeStream", func(t *testing.T) {
		for _, tc := range []struct {
			status int
			typ    string
			want   string
		}{
			{400, "BadRequestException", engine.ErrRefused},
			{429, "LimitExceededException", engine.ErrThrottled},
			{403, "UnrecognizedClientException", engine.ErrRefused},
			{503, "ServiceUnavailableException", engine.ErrUnavailable},
		} {
			t.Run(tc.typ, func(t *testing.T) {
				r, _ := newRecognizer(t, func(c *awsfake.Conn) { c.Refuse(tc.status, tc.typ, "no") })
				_, err := r.Stream(t.Context(), "en")
				if got := code(err); got != tc.want {
					t.Fatalf("code = %q (%v), want %q", got, err, tc.want)
				}
			})
		}
	})

	t.Run("ErrUnsupported", func(t *testing.T) {
		r, f := newRecognizer(t, func(c *awsfake.Conn) {})
		if _, err := r.Stream(t.Context(), "xx"); code(err) != engine.ErrUnsupported {
			t.Fatalf("err = %v", err)
		}
		if n := len(f.Conns()); n != 0 {
			t.Fatalf("%d requests for an unsupported language", n)
		}
	})

	t.Run("Disconnect", func(t *testing.T) {
		flow := fixtures(t, "flow.json")
		r, _ := newRecognizer(t, func(c *awsfake.Conn) {
			<-c.Audio()
			c.Send(flow[1].Message())
			c.Drop()
		})
		s, err := r.Stream(t.Context(), "en")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Send(speech)
		drain(t, s)
		if got := code(s.Err()); got != engine.ErrUnavailable {
			t.Fatalf("code = %q (%v), want unavailable", got, s.Err())
		}
	})

	t.Run("ServerEndsEarly", func(t *testing.T) {
		r, _ := newRecognizer(t, func(c *awsfake.Conn) {
			<-c.Audio()
			c.Accept()
		})
		s, err := r.Stream(t.Context(), "en")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Send(speech)
		drain(t, s)
		if got := code(s.Err()); got != engine.ErrUnavailable {
			t.Fatalf("code = %q (%v), want unavailable", got, s.Err())
		}
	})

	t.Run("Stall", func(t *testing.T) {
		r, _ := newRecognizer(t, func(c *awsfake.Conn) {
			c.Accept()
			for range c.Audio() { // reads audio, never answers
			}
		})
		r.StallTimeout = 300 * time.Millisecond
		s, err := r.Stream(t.Context(), "en")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		start := time.Now()
		s.Send(speech)
		drain(t, s)
		if got := code(s.Err()); got != engine.ErrTimeout {
			t.Fatalf("code = %q (%v), want timeout", got, s.Err())
		}
		if d := time.Since(start); d < r.StallTimeout {
			t.Fatalf("timed out after %v, before StallTimeout", d)
		}
	})

	t.Run("BadEvent", func(t *testing.T) {
		good := awsfake.Event("TranscriptEvent", []byte(`{"Transcript":{"Results":[]}}`))
		for name, send := range map[string]func(c *awsfake.Conn){
			"Checksum": func(c *awsfake.Conn) {
				// A valid prelude, then a frame whose message CRC is wrong.
				b := encode(t, good)
				b[len(b)-1] ^= 0xff
				c.SendRaw(b)
			},
			"NotJSON": func(c *awsfake.Conn) {
				c.Send(awsfake.Event("TranscriptEvent", []byte(`{"Transcript": [`)))
			},
			"NoMessageType": func(c *awsfake.Conn) {
				m := good
				m.Headers.Del(":message-type")
				c.Send(m)
			},
		} {
			t.Run(name, func(t *testing.T) {
				r, _ := newRecognizer(t, func(c *awsfake.Conn) {
					<-c.Audio()
					send(c)
					<-c.Request.Context().Done()
				})
				s, err := r.Stream(t.Context(), "en")
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				s.Send(speech)
				drain(t, s)
				if got := code(s.Err()); got != engine.ErrBadResponse {
					t.Fatalf("code = %q (%v), want bad_response", got, s.Err())
				}
			})
		}
	})

	t.Run("ContextCanceled", func(t *testing.T) {
		r, _ := newRecognizer(t, func(c *awsfake.Conn) {
			c.Accept()
			<-c.Request.Context().Done()
		})
		ctx, cancel := context.WithCancel(t.Context())
		s, err := r.Stream(ctx, "en")
		if err != nil {
			t.Fatal(err)
		}
		s.Send(speech)
		cancel()
		drain(t, s)
		if err := s.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Err = %v, want context.Canceled", err)
		}
	})
}

func TestLanguageCode(t *testing.T) {
	r := awsstream.New(aws.Config{Region: "eu-west-1"}, func(o *transcribestreaming.Options) {})
	r.LanguageCodes = map[string]string{"en": "en-GB"}
	for lang, want := range map[string]string{"en": "en-GB", "pt-BR": "pt-BR", "es": ""} {
		if got := r.LanguageCode(lang); got != want {
			t.Errorf("LanguageCode(%q) = %q, want %q", lang, got, want)
		}
	}
}
