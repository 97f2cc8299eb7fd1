package awsstream_test

import (
	"bytes"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/service/transcribestreaming"
	"github.com/aws/aws-sdk-go-v2/service/transcribestreaming/schemas"
	"github.com/aws/aws-sdk-go-v2/service/transcribestreaming/types"
	"github.com/aws/smithy-go/transport/http/protocol/restjson1"

	"github.com/pentecost/pentecost/worker/awsstream"
)

// FuzzHypotheses decodes a TranscriptEvent's JSON payload as the SDK does
// for a stream (the event-stream framing is the SDK's, and checksummed:
// the fuzzer would only exercise its CRC check) and checks the hypotheses
// Hypotheses makes of it against engine.Hypothesis's contract: text, UTF-8
// if the payload was; Stable within the text, all of it for a final, and
// ending on a word boundary. The corpus is in testdata/fuzz.
func FuzzHypotheses(f *testing.F) {
	proto := restjson1.New(schemas.Transcribe)
	f.Fuzz(func(t *testing.T, payload []byte) {
		var m eventstream.Message
		m.Headers.Set(":message-type", eventstream.StringValue("event"))
		m.Headers.Set(":event-type", eventstream.StringValue("TranscriptEvent"))
		m.Headers.Set(":content-type", eventstream.StringValue("application/json"))
		m.Payload = payload
		v, err := proto.DeserializeEventMessage(schemas.TranscriptResultStream, transcribestreaming.TypeRegistry, bytes.NewReader(encode(t, m)))
		if err != nil {
			return // the stream fails with the SDK's error (classify: ErrBadResponse)
		}
		ev, ok := v.(*types.TranscriptEvent)
		if !ok {
			t.Fatalf("decoded a %T", v)
		}
		hs := awsstream.Hypotheses(*ev)
		if ev.Transcript != nil && len(hs) > len(ev.Transcript.Results) {
			t.Fatalf("%d hypotheses of %d results", len(hs), len(ev.Transcript.Results))
		}
		for _, h := range hs {
			switch {
			case h.Text == "":
				t.Fatalf("hypothesis without text: %+v", h)
			case utf8.Valid(payload) && !utf8.ValidString(h.Text):
				t.Fatalf("text %q is not UTF-8", h.Text)
			case h.Stable < 0 || h.Stable > len(h.Text):
				t.Fatalf("Stable %d outside %q", h.Stable, h.Text)
			case h.Final && h.Stable != len(h.Text):
				t.Fatalf("final %+v does not promise its whole text", h)
			case !wordBoundary(h.Text, h.Stable):
				t.Fatalf("Stable %d of %q is inside a word", h.Stable, h.Text)
			}
		}
	})
}

// wordBoundary reports whether i splits s between words (or at an end):
// not inside a character, nor between two letters or digits of one word,
// unless one is of a script written without spaces, where each of
// Transcribe's items is a word.
func wordBoundary(s string, i int) bool {
	if i == 0 || i == len(s) {
		return true
	}
	if !utf8.RuneStart(s[i]) {
		return false
	}
	before, _ := utf8.DecodeLastRuneInString(s[:i])
	after, _ := utf8.DecodeRuneInString(s[i:])
	unspaced := func(r rune) bool {
		return unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Thai, unicode.Lao, unicode.Khmer, unicode.Myanmar)
	}
	return !inWord(before) || !inWord(after) || unspaced(before) || unspaced(after)
}

func inWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) }
