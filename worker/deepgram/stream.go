package deepgram

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/internal/wsclient"
)

var (
	closeStreamMessage = []byte(`{"type":"CloseStream"}`)
	keepAliveMessage   = []byte(`{"type":"KeepAlive"}`)

	errClosed             = errors.New("deepgram: stream closed")
	errSendAfterCloseSend = errors.New("deepgram: Send after CloseSend")
)

// stallSlack is how much sent audio may go without a Results message
// before the stall timer runs: Deepgram answers about once a second of
// audio and may hold back the last fraction until more comes.
const stallSlack = 2 * time.Second

// stream is one live transcription. Results say which audio they cover
// (start + duration), so the stream knows when it is owed an answer and
// arms the read deadline (StallTimeout) only then: a pause in the audio
// is not a stall.
type stream struct {
	c   *wsclient.Conn
	cfg Config
	log *slog.Logger

	results chan engine.Hypothesis
	quit    chan struct{} // closed by Close or a failure: stop delivering
	quitO   sync.Once
	done    chan struct{} // closed once the reader has ended and Results is closed
	wg      sync.WaitGroup

	mu        sync.Mutex    // guards the fields below; taken inside c.WriteMu
	sent      time.Duration // audio sent
	heard     time.Duration // audio covered by Results
	audioSent bool          // since the last keep-alive tick
	armed     bool
	eof       bool
	closed    bool
	err       error

	interim string // last interim delivered, to drop repeats
}

func startStream(ctx context.Context, c *wsclient.Conn, cfg Config, log *slog.Logger) *stream {
	s := &stream{
		c:       c,
		cfg:     cfg,
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
		s.watch(ctx)
	}()
	return s
}

// watch ends the stream with its context and keeps it alive while no
// audio flows.
func (s *stream) watch(ctx context.Context) {
	var tick <-chan time.Time
	if s.cfg.KeepAlive > 0 {
		t := time.NewTicker(s.cfg.KeepAlive)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			s.fail(wsclient.CtxError(ctx, Name))
			return
		case <-s.done:
			return
		case <-tick:
			s.keepAlive()
		}
	}
}

func (s *stream) keepAlive() {
	s.c.WriteMu.Lock()
	s.mu.Lock()
	idle := !s.audioSent && !s.eof && !s.closed && s.err == nil
	s.audioSent = false
	s.mu.Unlock()
	var err error
	if idle {
		err = s.c.Write(ws.OpText, keepAliveMessage, s.cfg.StallTimeout)
	}
	s.c.WriteMu.Unlock()
	if err != nil {
		s.writeFailed(err)
	}
}

// Send passes pcm to Deepgram as one binary message.
func (s *stream) Send(pcm []int16) error {
	if len(pcm) == 0 {
		return nil // an empty frame would end the stream
	}
	p := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(p[2*i:], uint16(v))
	}
	s.c.WriteMu.Lock()
	if err := s.sending(time.Duration(len(pcm)) * time.Second / engine.SampleRate); err != nil {
		s.c.WriteMu.Unlock()
		return err
	}
	err := s.c.Write(ws.OpBinary, p, s.cfg.StallTimeout)
	s.c.WriteMu.Unlock()
	if err != nil {
		return s.writeFailed(err)
	}
	return nil
}

// CloseSend sends CloseStream: Deepgram sends the last finals, then
// Metadata, and closes.
func (s *stream) CloseSend() error {
	s.c.WriteMu.Lock()
	s.mu.Lock()
	again := s.eof
	s.mu.Unlock()
	if again {
		s.c.WriteMu.Unlock()
		return nil
	}
	if err := s.sending(-1); err != nil {
		s.c.WriteMu.Unlock()
		return err
	}
	err := s.c.Write(ws.OpText, closeStreamMessage, s.cfg.StallTimeout)
	s.c.WriteMu.Unlock()
	if err != nil {
		return s.writeFailed(err)
	}
	return nil
}

// sending records d of audio about to be sent (d < 0: CloseStream) and
// arms the read deadline when an answer becomes owed.
func (s *stream) sending(d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return s.err
	case s.closed:
		return errClosed
	case s.eof:
		return errSendAfterCloseSend
	}
	if d < 0 {
		s.eof = true
	} else {
		s.sent += d
		s.audioSent = true
	}
	if !s.armed && s.owed() {
		s.armed = true
		_ = s.c.SetReadDeadline(time.Now().Add(s.cfg.StallTimeout))
	}
	return nil
}

func (s *stream) owed() bool { return s.eof || s.sent-s.heard > stallSlack }

// answered records a message covering audio up to end and re-arms or
// disarms the read deadline.
func (s *stream) answered(end time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.heard = max(s.heard, end)
	s.armed = s.owed()
	if s.armed {
		_ = s.c.SetReadDeadline(time.Now().Add(s.cfg.StallTimeout))
	} else {
		_ = s.c.SetReadDeadline(time.Time{})
	}
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
	t := time.NewTimer(s.cfg.StallTimeout)
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

// read delivers Results until Deepgram ends the stream after CloseSend
// (nil), a failure, or Close.
func (s *stream) read() error {
	for {
		p, op, err := s.c.Next()
		if err != nil {
			select {
			case <-s.quit: // Close or the context: that error stands
				return nil
			default:
			}
			var ce wsutil.ClosedError
			if errors.As(err, &ce) {
				return s.closedBy(ce)
			}
			return wsclient.ReadError(Name, err)
		}
		if op != ws.OpText {
			return badResponse("a binary message")
		}
		var m message
		if err := json.Unmarshal(p, &m.header); err != nil {
			return badResponse("not JSON")
		}
		switch m.Type {
		case "Results":
			if err := json.Unmarshal(p, &m); err != nil {
				return badResponse("Results it cannot read")
			}
			h, ok, err := s.decode(&m)
			if err != nil {
				return err
			}
			s.answered(seconds(m.Start + m.Duration))
			if ok {
				select {
				case s.results <- h:
				case <-s.quit:
					return nil
				}
			}
		case "Metadata":
			// Sent once the last Results are out after CloseStream.
			s.mu.Lock()
			eof := s.eof
			s.mu.Unlock()
			if eof {
				return nil
			}
		case "":
			return badResponse("a message without a type")
		default: // UtteranceEnd, SpeechStarted, and whatever comes next
			s.log.Debug("message ignored", "type", m.Type)
		}
	}
}

// closedBy maps the server's close frame: a normal close after CloseSend
// is the end; otherwise the reason is Deepgram's error code.
func (s *stream) closedBy(ce wsutil.ClosedError) error {
	s.mu.Lock()
	eof := s.eof
	s.mu.Unlock()
	if eof && ce.Code == ws.StatusNormalClosure {
		return nil
	}
	code := engine.ErrUnavailable
	switch ce.Code {
	case ws.StatusPolicyViolation, ws.StatusProtocolError, ws.StatusUnsupportedData, ws.StatusInvalidFramePayloadData:
		code = engine.ErrRefused // DATA-0000: the audio cannot be decoded
	}
	return &engine.Error{Engine: Name, Code: code, Err: errors.New("server closed the stream: " + ce.Error())}
}

// header is what every message from Deepgram has; the rest depends on
// the type (SpeechStarted's "channel" is an array, Results' an object).
type header struct {
	Type string `json:"type"`
}

// message is a Results message (testdata/ has each shape).
type message struct {
	header
	IsFinal  bool    `json:"is_final"`
	Start    float64 `json:"start"`
	Duration float64 `json:"duration"`
	Channel  *struct {
		Alternatives []struct {
			Transcript string `json:"transcript"`
			Words      []struct {
				Start float64 `json:"start"`
				End   float64 `json:"end"`
			} `json:"words"`
		} `json:"alternatives"`
	} `json:"channel"`
}

// decode turns Results into a hypothesis; ok is false for Results that
// say nothing new (a repeated interim, silence).
func (s *stream) decode(m *message) (h engine.Hypothesis, ok bool, err error) {
	if m.Channel == nil || len(m.Channel.Alternatives) == 0 {
		return h, false, badResponse("Results without alternatives")
	}
	alt := m.Channel.Alternatives[0]
	h = engine.Hypothesis{Text: alt.Transcript, Start: seconds(m.Start), End: seconds(m.Start + m.Duration)}
	if n := len(alt.Words); n > 0 {
		h.Start, h.End = seconds(alt.Words[0].Start), seconds(alt.Words[n-1].End)
	}
	if !m.IsFinal {
		if h.Text == "" || h.Text == s.interim {
			return h, false, nil
		}
		s.interim = h.Text
		return h, true, nil
	}
	// An empty final matters only to replace an interim already shown.
	if h.Text == "" && s.interim == "" {
		return h, false, nil
	}
	s.interim = ""
	h.Final, h.Stable = true, len(h.Text)
	return h, true, nil
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func badResponse(what string) error {
	return &engine.Error{Engine: Name, Code: engine.ErrBadResponse, Err: errors.New("server sent " + what)}
}
