// Package awsstream is a streaming recogniser on Amazon Transcribe
// Streaming (StartStreamTranscription over HTTP/2 with the AWS event-stream
// encoding), with partial-results stabilisation so that the pipeline can
// cut and translate the stable prefix while the speaker is still talking.
package awsstream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/transcribestreaming"
	"github.com/aws/aws-sdk-go-v2/service/transcribestreaming/types"
	"github.com/aws/smithy-go"
	smithyeventstream "github.com/aws/smithy-go/eventstream"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/pentecost/pentecost/worker/engine"
)

// Name is the engine's name in metrics, logs and the configuration
// (recognize.LANG=transcribe-streaming[:CODE]).
const Name = "transcribe-streaming"

// DefaultLanguageCodes maps ISO 639-1 languages to Transcribe Streaming's
// codes. A language written as a full code ("en-GB") is passed as it is.
var DefaultLanguageCodes = map[string]string{
	"en": "en-US", "es": "es-ES", "ca": "ca-ES", "gl": "gl-ES", "eu": "eu-ES",
	"fr": "fr-FR", "de": "de-DE", "it": "it-IT", "pt": "pt-PT", "nl": "nl-NL",
	"pl": "pl-PL", "ro": "ro-RO", "ru": "ru-RU", "ar": "ar-SA", "zh": "zh-CN",
	"ja": "ja-JP", "ko": "ko-KR", "hi": "hi-IN", "sv": "sv-SE", "da": "da-DK",
	"fi": "fi-FI", "no": "no-NO", "cs": "cs-CZ", "el": "el-GR", "he": "he-IL",
	"id": "id-ID", "uk": "uk-UA", "tr": "tr-TR", "vi": "vi-VN", "th": "th-TH",
}

// chunkSamples bounds one AudioEvent: AWS recommends chunks of 50 to 200 ms.
const chunkSamples = engine.SampleRate / 10

// Recognizer is a StreamingRecognizer on Amazon Transcribe Streaming.
// Credentials need transcribe:StartStreamTranscription.
type Recognizer struct {
	c *transcribestreaming.Client

	// LanguageCodes maps languages to Transcribe's codes (DefaultLanguageCodes).
	LanguageCodes map[string]string
	// Stability is how stable a partial result's items must be before
	// Transcribe marks them Stable: low gives them sooner, high changes
	// them less. Default medium.
	Stability types.PartialResultsStability
	// StallTimeout ends a stream with engine.ErrTimeout when audio has been
	// sent and no event has come back for this long. Transcribe answers
	// every few hundred ms while audio flows, even in silence.
	StallTimeout time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// New returns a Transcribe Streaming recogniser. The configuration's
// BaseEndpoint (transcribe.streaming_endpoint) replaces the regional
// endpoint; its HTTP client's overall timeout is removed, since a stream
// lasts as long as the talk.
func New(cfg aws.Config, optFns ...func(*transcribestreaming.Options)) *Recognizer {
	if b, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		cfg.HTTPClient = b.WithTimeout(0)
	}
	return &Recognizer{
		c:             transcribestreaming.NewFromConfig(cfg, optFns...),
		LanguageCodes: DefaultLanguageCodes,
		Stability:     types.PartialResultsStabilityMedium,
		StallTimeout:  10 * time.Second,
		Now:           time.Now,
	}
}

// Name implements engine.StreamingRecognizer.
func (r *Recognizer) Name() string { return Name }

// LanguageCode returns Transcribe's code for lang, or "" when unknown.
func (r *Recognizer) LanguageCode(lang string) string {
	if c := r.LanguageCodes[lang]; c != "" {
		return c
	}
	if strings.Contains(lang, "-") {
		return lang
	}
	return ""
}

// Stream implements engine.StreamingRecognizer. It fails with
// engine.ErrUnsupported for a language without a code, ErrRefused for a
// request or credentials refused, ErrThrottled when the account's stream
// limit is reached, ErrUnavailable when the service cannot be reached.
func (r *Recognizer) Stream(ctx context.Context, lang string) (engine.RecognitionStream, error) {
	code := r.LanguageCode(lang)
	if code == "" {
		return nil, &engine.Error{Engine: Name, Code: engine.ErrUnsupported, Err: fmt.Errorf("no language code for %q", lang)}
	}
	sctx, cancel := context.WithCancel(ctx)
	out, err := r.c.StartStreamTranscription(sctx, &transcribestreaming.StartStreamTranscriptionInput{
		LanguageCode:                      types.LanguageCode(code),
		MediaEncoding:                     types.MediaEncodingPcm,
		MediaSampleRateHertz:              aws.Int32(engine.SampleRate),
		EnablePartialResultsStabilization: true,
		PartialResultsStability:           r.Stability,
	})
	if err != nil {
		cancel()
		return nil, classify(ctx, err)
	}
	now := r.Now
	if now == nil {
		now = time.Now
	}
	s := &stream{
		es:      out.GetStream(),
		parent:  ctx,
		ctx:     sctx,
		cancel:  cancel,
		results: make(chan engine.Hypothesis, 64),
		wake:    make(chan struct{}, 1),
		ended:   make(chan struct{}),
		stall:   r.StallTimeout,
		now:     now,
	}
	go s.write()
	go s.read()
	go s.follow()
	if s.stall > 0 {
		go s.watch()
	}
	return s, nil
}

// follow ends the stream as soon as its caller's context ends. The SDK's
// event reader notices a cancelled request only when its connection does,
// which on a loaded machine took longer than the stall timeout.
func (s *stream) follow() {
	select {
	case <-s.parent.Done():
		s.end(classify(s.parent, s.parent.Err()))
	case <-s.ended:
	}
}

// stream is one StartStreamTranscription call. Send queues audio for the
// writer goroutine, so that it never waits for the network; read turns
// events into hypotheses; watch ends a stalled stream.
type stream struct {
	es     *transcribestreaming.StartStreamTranscriptionEventStream
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc

	results chan engine.Hypothesis
	wake    chan struct{}
	ended   chan struct{} // closed once the stream has failed or been closed
	stall   time.Duration
	now     func() time.Time

	mu        sync.Mutex
	pending   [][]int16
	closeSend bool
	err       error     // why it ended; set once
	done      bool      // err is set (or Close was called)
	waitSince time.Time // first audio sent since the last event; zero: none
}

func (s *stream) Send(pcm []int16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		if s.err != nil {
			return s.err
		}
		return &engine.Error{Engine: Name, Code: engine.ErrInternal, Err: errors.New("stream closed")}
	}
	if s.closeSend {
		return &engine.Error{Engine: Name, Code: engine.ErrInternal, Err: errors.New("send after CloseSend")}
	}
	s.pending = append(s.pending, append([]int16(nil), pcm...))
	s.signal()
	return nil
}

func (s *stream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *stream) Results() <-chan engine.Hypothesis { return s.results }

func (s *stream) CloseSend() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeSend = true
	s.signal()
	return nil
}

func (s *stream) Close() error {
	s.end(nil)
	return nil
}

func (s *stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// end stops the stream for err (nil: closed by us), once.
func (s *stream) end(err error) {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return
	}
	s.done, s.err = true, err
	s.mu.Unlock()
	close(s.ended)
	s.cancel()
	s.es.Close()
}

func (s *stream) write() {
	for {
		select {
		case <-s.wake:
		case <-s.ended:
			return
		}
		s.mu.Lock()
		batch, closing := s.pending, s.closeSend
		s.pending = nil
		s.mu.Unlock()
		for _, pcm := range batch {
			for len(pcm) > 0 {
				n := min(len(pcm), chunkSamples)
				s.mu.Lock()
				if s.waitSince.IsZero() {
					s.waitSince = s.now()
				}
				s.mu.Unlock()
				ev := &types.AudioStreamMemberAudioEvent{Value: types.AudioEvent{AudioChunk: le16(pcm[:n])}}
				if err := s.es.Send(s.ctx, ev); err != nil {
					// A failed read closes the writer too: report its cause.
					if rerr := s.es.Reader.Err(); rerr != nil {
						err = rerr
					}
					s.end(classify(s.parent, err))
					return
				}
				pcm = pcm[n:]
			}
		}
		if closing {
			s.mu.Lock()
			empty := len(s.pending) == 0
			if empty && s.waitSince.IsZero() {
				// Waiting for the finals counts as waiting for an answer.
				s.waitSince = s.now()
			}
			s.mu.Unlock()
			if empty {
				// Ends the request body with the empty signed frame.
				s.es.Writer.Close()
				return
			}
		}
	}
}

func (s *stream) read() {
	defer close(s.results)
	for ev := range s.es.Events() {
		s.mu.Lock()
		s.waitSince = time.Time{}
		s.mu.Unlock()
		te, ok := ev.(*types.TranscriptResultStreamMemberTranscriptEvent)
		if !ok {
			continue // an event type newer than this code
		}
		for _, h := range Hypotheses(te.Value) {
			select {
			case s.results <- h:
			case <-s.ended:
				return
			}
		}
	}
	err := s.es.Reader.Err()
	if err == nil {
		err = s.es.Err()
	}
	s.mu.Lock()
	closed := s.closeSend
	s.mu.Unlock()
	switch {
	case err != nil:
		s.end(classify(s.parent, err))
	case !closed:
		s.end(&engine.Error{Engine: Name, Code: engine.ErrUnavailable, Err: errors.New("stream ended before CloseSend")})
	default:
		s.end(nil)
	}
}

// watch ends the stream with ErrTimeout once audio has waited StallTimeout
// for an answer.
func (s *stream) watch() {
	t := time.NewTicker(s.stall / 4)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.ended:
			return
		}
		s.mu.Lock()
		since := s.waitSince
		s.mu.Unlock()
		if !since.IsZero() && s.now().Sub(since) >= s.stall {
			s.end(&engine.Error{Engine: Name, Code: engine.ErrTimeout,
				Err: fmt.Errorf("no event for %v while audio was sent", s.stall)})
			return
		}
	}
}

// Hypotheses maps a TranscriptEvent to hypotheses, one per result with
// text: IsPartial results are interim, with Stable covering the leading
// items Transcribe marked stable; the others are final.
func Hypotheses(ev types.TranscriptEvent) []engine.Hypothesis {
	if ev.Transcript == nil {
		return nil
	}
	var hs []engine.Hypothesis
	for _, r := range ev.Transcript.Results {
		if len(r.Alternatives) == 0 {
			continue
		}
		alt := r.Alternatives[0]
		text := strings.TrimSpace(aws.ToString(alt.Transcript))
		if text == "" {
			text = joinItems(alt.Items)
		}
		if text == "" {
			continue
		}
		h := engine.Hypothesis{Text: text, Final: !r.IsPartial,
			Start: seconds(r.StartTime), End: seconds(r.EndTime)}
		if h.Final {
			h.Stable = len(text)
		} else {
			h.Stable = stablePrefix(text, alt.Items)
		}
		hs = append(hs, h)
	}
	return hs
}

// stablePrefix is the byte length of text covered by the leading items
// marked Stable, found in order in text; 0 when they cannot be placed.
// An item found ending inside a word of text ("good" in "goodness") is not
// placed: engine.Hypothesis.Stable ends on a word boundary.
func stablePrefix(text string, items []types.Item) int {
	stable, pos := 0, 0
	for _, it := range items {
		if !aws.ToBool(it.Stable) {
			break
		}
		c := aws.ToString(it.Content)
		i := strings.Index(text[pos:], c)
		if c == "" || i < 0 || !wordEnd(text, pos+i+len(c)) {
			break
		}
		pos += i + len(c)
		stable = pos
	}
	return stable
}

// wordEnd reports whether i ends a word of s: it is not between two
// letters or digits, unless one is of a script written without spaces
// (Chinese, Japanese, Thai…), where Transcribe's items are the words.
func wordEnd(s string, i int) bool {
	if i >= len(s) {
		return true
	}
	if !utf8.RuneStart(s[i]) {
		return false
	}
	before, _ := utf8.DecodeLastRuneInString(s[:i])
	after, _ := utf8.DecodeRuneInString(s[i:])
	return !inWord(before) || !inWord(after) || unspaced(before) || unspaced(after)
}

func inWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) }

func unspaced(r rune) bool {
	return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar)
}

// joinItems writes items as Transcribe does: words apart, punctuation
// attached to the word before.
func joinItems(items []types.Item) string {
	var b strings.Builder
	for _, it := range items {
		c := aws.ToString(it.Content)
		if c == "" {
			continue
		}
		if b.Len() > 0 && it.Type != types.ItemTypePunctuation {
			b.WriteByte(' ')
		}
		b.WriteString(c)
	}
	return b.String()
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func le16(pcm []int16) []byte {
	b := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

// classify gives err an engine error code. ctx is the caller's: its end
// is a timeout (deadline) or the caller's own cancellation, not a failure.
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &engine.Error{Engine: Name, Code: engine.ErrTimeout, Err: err}
		}
		return ctx.Err()
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ThrottlingException", "LimitExceededException", "TooManyRequestsException":
			return &engine.Error{Engine: Name, Code: engine.ErrThrottled, Err: err}
		case "BadRequestException", "ConflictException", "AccessDeniedException", "UnrecognizedClientException",
			"InvalidSignatureException", "ExpiredTokenException", "MissingAuthenticationTokenException":
			return &engine.Error{Engine: Name, Code: engine.ErrRefused, Err: err}
		case "ServiceUnavailableException", "InternalFailureException":
			return &engine.Error{Engine: Name, Code: engine.ErrUnavailable, Err: err}
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch st := re.HTTPStatusCode(); {
		case st == 429:
			return &engine.Error{Engine: Name, Code: engine.ErrThrottled, Err: err}
		case st >= 500:
			return &engine.Error{Engine: Name, Code: engine.ErrUnavailable, Err: err}
		case st >= 400:
			return &engine.Error{Engine: Name, Code: engine.ErrRefused, Err: err}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &engine.Error{Engine: Name, Code: engine.ErrTimeout, Err: err}
	}
	var ce smithyeventstream.ChecksumError
	var le smithyeventstream.LengthError
	var de *smithy.DeserializationError
	if errors.As(err, &ce) || errors.As(err, &le) || errors.As(err, &de) ||
		strings.HasPrefix(err.Error(), "deserialize ") || strings.HasPrefix(err.Error(), "missing :") {
		return &engine.Error{Engine: Name, Code: engine.ErrBadResponse, Err: err}
	}
	if api != nil {
		return &engine.Error{Engine: Name, Code: engine.ErrInternal, Err: err}
	}
	// What is left is the transport: a refused or dropped connection.
	return &engine.Error{Engine: Name, Code: engine.ErrUnavailable, Err: err}
}

var _ engine.StreamingRecognizer = (*Recognizer)(nil)
