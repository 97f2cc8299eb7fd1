package vosk

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/internal/wsclient"
)

var (
	// configMessage opens every stream; words asks for word timings.
	configMessage = []byte(`{"config":{"sample_rate":16000,"words":1}}`)
	// eofMessage must be exactly this: asr_server.py compares strings.
	eofMessage = []byte(`{"eof" : 1}`)

	errClosed       = errors.New("vosk: stream closed")
	errSendAfterEOF = errors.New("vosk: Send after CloseSend")
)

// stream is one connection to a Vosk server. The server answers every
// message but the config with exactly one message, in order, so the
// stream knows how many answers it is owed: the read deadline (StallTimeout)
// is armed while it is owed any, and the answer to eof is the last.
type stream struct {
	c     *wsclient.Conn
	stall time.Duration
	log   *slog.Logger

	results chan engine.Hypothesis
	quit    chan struct{} // closed by Close or a failure: stop delivering
	quitO   sync.Once
	done    chan struct{} // closed once the reader has ended and Results is closed
	wg      sync.WaitGroup

	mu       sync.Mutex // guards the fields below; taken inside c.WriteMu
	sent     int        // messages owed an answer: audio chunks, then eof
	received int
	eof      bool
	closed   bool
	err      error

	partial string // last interim delivered, to drop repeats
}

func startStream(ctx context.Context, c *wsclient.Conn, stall time.Duration, log *slog.Logger) *stream {
	s := &stream{
		c:       c,
		stall:   stall,
		log:     log,
		results: make(chan engine.Hypothesis, 16),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.finish(s.read())
	}()
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
			s.fail(wsclient.CtxError(ctx, Name))
		case <-s.done:
		}
	}()
	return s
}

// Send passes pcm to the server as one binary message.
func (s *stream) Send(pcm []int16) error {
	if len(pcm) == 0 {
		return nil
	}
	p := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(p[2*i:], uint16(v))
	}
	s.c.WriteMu.Lock()
	if err := s.owe(false); err != nil {
		s.c.WriteMu.Unlock()
		return err
	}
	err := s.c.Write(ws.OpBinary, p, s.stall)
	s.c.WriteMu.Unlock()
	if err != nil {
		return s.writeFailed(err)
	}
	return nil
}

// CloseSend sends eof: the server answers with the last final and closes.
func (s *stream) CloseSend() error {
	s.c.WriteMu.Lock()
	s.mu.Lock()
	again := s.eof
	s.mu.Unlock()
	if again {
		s.c.WriteMu.Unlock()
		return nil
	}
	if err := s.owe(true); err != nil {
		s.c.WriteMu.Unlock()
		return err
	}
	err := s.c.Write(ws.OpText, eofMessage, s.stall)
	s.c.WriteMu.Unlock()
	if err != nil {
		return s.writeFailed(err)
	}
	return nil
}

// owe records a message about to be sent and arms the read deadline.
func (s *stream) owe(eof bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return s.err
	case s.closed:
		return errClosed
	case s.eof:
		return errSendAfterEOF
	}
	if s.sent == s.received {
		_ = s.c.SetReadDeadline(time.Now().Add(s.stall))
	}
	s.sent++
	s.eof = eof
	return nil
}

// answered records an answer; it reports whether it was the last one.
func (s *stream) answered() (last bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received++
	if s.received < s.sent {
		_ = s.c.SetReadDeadline(time.Now().Add(s.stall))
	} else {
		_ = s.c.SetReadDeadline(time.Time{})
	}
	return s.eof && s.received == s.sent
}

// writeFailed ends the stream after a failed write. A write that timed
// out is a stall; any other failure means the connection is gone, and the
// reader is left a moment to find out why (the server's close frame says
// more than a reset), without holding WriteMu, which it needs to answer that
// frame.
func (s *stream) writeFailed(err error) error {
	if wsclient.IsTimeout(err) {
		s.fail(&engine.Error{Engine: Name, Code: engine.ErrTimeout, Err: err})
		return s.Err()
	}
	t := time.NewTimer(s.stall)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
	}
	s.fail(&engine.Error{Engine: Name, Code: engine.ErrUnavailable, Err: err})
	if err := s.Err(); err != nil {
		return err
	}
	return errClosed
}

// Results delivers the hypotheses.
func (s *stream) Results() <-chan engine.Hypothesis { return s.results }

// Close abandons the stream and waits for its goroutines to end. Err stays
// nil unless the stream had already failed.
func (s *stream) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	return nil
}

// Err is why the stream ended.
func (s *stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// fail ends the stream with err unless it has already ended.
func (s *stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil && !s.closed {
		s.err = err
	}
	s.mu.Unlock()
	s.stop()
}

func (s *stream) stop() {
	s.quitO.Do(func() {
		close(s.quit)
		_ = s.c.Abort() // unblocks the reader
	})
}

func (s *stream) finish(err error) {
	if err != nil {
		s.fail(err)
		s.log.Warn("stream failed", "err", s.Err())
	} else {
		s.c.Close()
		s.stop()
	}
	close(s.results)
	close(s.done)
}

// read delivers the server's answers until the answer to eof (nil), a
// failure, or Close.
func (s *stream) read() error {
	for {
		p, op, err := s.c.Next()
		if err != nil {
			select {
			case <-s.quit: // Close or the context: that error stands
				return nil
			default:
			}
			return wsclient.ReadError(Name, err)
		}
		if op != ws.OpText {
			return badResponse("a binary message")
		}
		last := s.answered()
		h, ok, err := s.decode(p)
		if err != nil {
			return err
		}
		if ok {
			select {
			case s.results <- h:
			case <-s.quit:
				return nil
			}
		}
		if last {
			return nil
		}
	}
}

// message is any answer of the server (testdata/ has each shape).
type message struct {
	Partial      *string `json:"partial"`
	Text         *string `json:"text"`
	Result       []word  `json:"result"`
	Alternatives []struct {
		Text   string `json:"text"`
		Result []word `json:"result"`
	} `json:"alternatives"` // when the server runs with VOSK_ALTERNATIVES
}

type word struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Word  string  `json:"word"`
}

// decode turns an answer into a hypothesis; ok is false for answers that
// say nothing new (a repeated or empty partial, an empty final after
// silence).
func (s *stream) decode(p []byte) (h engine.Hypothesis, ok bool, err error) {
	var m message
	if err := json.Unmarshal(p, &m); err != nil {
		return h, false, badResponse("not JSON")
	}
	switch {
	case m.Partial != nil:
		if *m.Partial == "" || *m.Partial == s.partial {
			return h, false, nil
		}
		s.partial = *m.Partial
		return engine.Hypothesis{Text: *m.Partial}, true, nil
	case m.Text != nil:
		return s.final(*m.Text, m.Result)
	case len(m.Alternatives) > 0:
		return s.final(m.Alternatives[0].Text, m.Alternatives[0].Result)
	default:
		return h, false, badResponse("neither partial nor text")
	}
}

func (s *stream) final(text string, words []word) (h engine.Hypothesis, ok bool, err error) {
	// An empty final matters only to replace an interim already shown.
	if text == "" && s.partial == "" {
		return h, false, nil
	}
	s.partial = ""
	h = engine.Hypothesis{Text: text, Final: true, Stable: len(text)}
	if len(words) > 0 {
		h.Start = seconds(words[0].Start)
		h.End = seconds(words[len(words)-1].End)
	}
	return h, true, nil
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func badResponse(what string) error {
	return &engine.Error{Engine: Name, Code: engine.ErrBadResponse, Err: errors.New("server sent " + what)}
}
