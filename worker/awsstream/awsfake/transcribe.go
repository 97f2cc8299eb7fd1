// Package awsfake is a local fake of Amazon Transcribe Streaming for tests:
// an HTTPS server speaking HTTP/2, as the service does, that decodes the
// SDK's signed AudioEvent frames and answers with event-stream messages a
// test scripts (TranscriptEvents, exceptions, a dropped stream, silence).
// Message shapes follow the API reference; the fixtures in
// worker/awsstream/testdata record them.
package awsfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Transcribe is a fake Transcribe Streaming endpoint. Each
// StartStreamTranscription call runs Handle on its own Conn.
type Transcribe struct {
	*httptest.Server
	handle func(c *Conn)

	mu    sync.Mutex
	conns []*Conn
}

// NewTranscribe starts a fake whose streams are served by handle, which
// runs in the request's goroutine; the stream ends when it returns.
func NewTranscribe(handle func(c *Conn)) *Transcribe {
	f := &Transcribe{handle: handle}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.Server.EnableHTTP2 = true
	f.Server.StartTLS()
	return f
}

// Config returns an SDK configuration that reaches the fake: its URL as
// the base endpoint, its client (trusting its certificate, speaking
// HTTP/2) and static credentials, so the SDK signs as it would for AWS.
func (f *Transcribe) Config() aws.Config {
	return aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.URL),
		HTTPClient:   f.Client(),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAKE", "SECRETFAKE", ""),
	}
}

// Conns returns the streams served so far.
func (f *Transcribe) Conns() []*Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Conn(nil), f.conns...)
}

// Conn is one StartStreamTranscription request.
type Conn struct {
	// Request is the HTTP request: its headers carry the parameters
	// (X-Amzn-Transcribe-Language-Code, -Sample-Rate, -Media-Encoding,
	// -Enable-Partial-Results-Stabilization, -Partial-Results-Stability).
	Request *http.Request

	w        http.ResponseWriter
	accepted bool
	enc      *eventstream.Encoder
	audio    chan []byte

	mu         sync.Mutex
	signed     int  // frames with a :chunk-signature
	endOfAudio bool // the empty signed frame that ends the input arrived
	decodeErr  error
}

func (f *Transcribe) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/stream-transcription" {
		http.Error(w, `{"message":"unknown operation"}`, http.StatusNotFound)
		return
	}
	c := &Conn{Request: r, w: w, enc: eventstream.NewEncoder(), audio: make(chan []byte, 1024)}
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	go c.readAudio()
	f.handle(c)
	c.Accept()
}

// readAudio decodes the request body: signed envelopes (:date,
// :chunk-signature) whose payload is an AudioEvent message; an envelope
// with an empty payload ends the input.
func (c *Conn) readAudio() {
	defer close(c.audio)
	dec := eventstream.NewDecoder()
	for {
		outer, err := dec.Decode(c.Request.Body, nil)
		if err != nil {
			if err != io.EOF {
				c.setErr(err)
			}
			return
		}
		payload := outer.Payload
		if outer.Headers.Get(":chunk-signature") != nil {
			c.mu.Lock()
			c.signed++
			c.mu.Unlock()
			if len(payload) == 0 {
				c.mu.Lock()
				c.endOfAudio = true
				c.mu.Unlock()
				return
			}
			inner, err := eventstream.NewDecoder().Decode(bytes.NewReader(payload), nil)
			if err != nil {
				c.setErr(err)
				return
			}
			outer = inner
		}
		if et := outer.Headers.Get(":event-type"); et == nil || et.String() != "AudioEvent" {
			c.setErr(fmt.Errorf("unexpected input event %v", outer.Headers))
			return
		}
		select {
		case c.audio <- append([]byte(nil), outer.Payload...):
		case <-c.Request.Context().Done():
			return
		}
	}
}

func (c *Conn) setErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.decodeErr == nil {
		c.decodeErr = err
	}
}

// Audio delivers the PCM of each AudioEvent, little-endian 16-bit; it is
// closed when the input ends. It accepts the stream first (see Accept):
// the SDK sends no audio before the response headers.
func (c *Conn) Audio() <-chan []byte {
	c.Accept()
	return c.audio
}

// WaitEnd reads and drops audio until the input ends, and says whether it
// ended with the SDK's empty signed frame.
func (c *Conn) WaitEnd() bool {
	for range c.Audio() {
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endOfAudio
}

// Signed is how many input frames carried a :chunk-signature.
func (c *Conn) Signed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.signed
}

// DecodeErr is the first input frame that could not be decoded.
func (c *Conn) DecodeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.decodeErr
}

// Accept sends the response headers, as the service does at once.
func (c *Conn) Accept() {
	if c.accepted {
		return
	}
	c.accepted = true
	c.w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	c.w.Header().Set("X-Amzn-Request-Id", "fake-request")
	c.w.Header().Set("X-Amzn-Transcribe-Session-Id", "fake-session")
	c.w.Header().Set("X-Amzn-Transcribe-Language-Code", c.Request.Header.Get("X-Amzn-Transcribe-Language-Code"))
	c.w.WriteHeader(http.StatusOK)
	http.NewResponseController(c.w).Flush()
}

// Refuse answers the request with an HTTP error instead of a stream, as
// the service does for a bad request (400 BadRequestException) or too
// many streams (429 LimitExceededException).
func (c *Conn) Refuse(status int, errorType, message string) {
	c.accepted = true
	c.w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	c.w.Header().Set("X-Amzn-Errortype", errorType+":http://internal.amazon.com/coral/com.amazonaws.transcribe.streaming/")
	c.w.WriteHeader(status)
	json.NewEncoder(c.w).Encode(map[string]string{"Message": message})
}

// Send writes one message and flushes it.
func (c *Conn) Send(m eventstream.Message) error {
	c.Accept()
	if err := c.enc.Encode(c.w, m); err != nil {
		return err
	}
	return http.NewResponseController(c.w).Flush()
}

// SendRaw writes bytes as they are (a corrupt frame) and flushes them.
func (c *Conn) SendRaw(b []byte) error {
	c.Accept()
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	return http.NewResponseController(c.w).Flush()
}

// SendTranscript sends a TranscriptEvent whose JSON payload is
// {"Transcript": transcript}.
func (c *Conn) SendTranscript(transcript any) error {
	b, err := json.Marshal(map[string]any{"Transcript": transcript})
	if err != nil {
		return err
	}
	return c.Send(Event("TranscriptEvent", b))
}

// SendException sends an exception message (:message-type exception,
// :exception-type), which ends the stream.
func (c *Conn) SendException(exceptionType, message string) error {
	return c.Send(Exception(exceptionType, message))
}

// Drop resets the stream (HTTP/2 RST_STREAM), as a dropped connection
// looks to the client. It does not return.
func (c *Conn) Drop() {
	panic(http.ErrAbortHandler)
}

// Event is an event message with a JSON payload.
func Event(eventType string, payload []byte) eventstream.Message {
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("event"))
	m.Headers.Set(":event-type", eventstream.StringValue(eventType))
	m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	m.Payload = payload
	return m
}

// Exception is an exception message with the documented {"Message"} body.
func Exception(exceptionType, message string) eventstream.Message {
	var m eventstream.Message
	m.Headers.Set(":message-type", eventstream.StringValue("exception"))
	m.Headers.Set(":exception-type", eventstream.StringValue(exceptionType))
	m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
	m.Payload, _ = json.Marshal(map[string]string{"Message": message})
	return m
}

// Fixture is one recorded message: its headers and its JSON payload.
type Fixture struct {
	Comment string            `json:"comment,omitempty"`
	Headers map[string]string `json:"headers"`
	Payload json.RawMessage   `json:"payload"`
}

// Message encodes the fixture's headers (all strings) and payload.
func (f Fixture) Message() eventstream.Message {
	var m eventstream.Message
	for k, v := range f.Headers {
		m.Headers.Set(k, eventstream.StringValue(v))
	}
	m.Payload = []byte(f.Payload)
	return m
}

// LoadFixtures reads a JSON array of fixtures.
func LoadFixtures(path string) ([]Fixture, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var fs []Fixture
	if err := json.Unmarshal(b, &fs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fs, nil
}
