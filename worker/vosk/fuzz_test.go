package vosk

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/pentecost/pentecost/worker/engine"
)

// FuzzDecode feeds one stream a series of server messages (separated by
// NUL, which JSON text cannot hold; the corpus is in testdata/fuzz) and
// checks what decode makes of each: a message it cannot use is
// engine.ErrBadResponse and ends the stream; an interim is new, non-empty
// text with nothing promised stable; a final promises all its text; an
// empty final only comes to replace an interim on show.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &stream{}
		shown := "" // the interim on show since the last final
		for _, p := range bytes.Split(in, []byte{0}) {
			h, ok, err := s.decode(p)
			if err != nil {
				var e *engine.Error
				if !errors.As(err, &e) || e.Engine != Name || e.Code != engine.ErrBadResponse {
					t.Fatalf("decode(%q) error %v, want a %s from %s", p, err, engine.ErrBadResponse, Name)
				}
				return // read ends the stream
			}
			if !json.Valid(p) {
				t.Fatalf("decode(%q) accepted a message that is not JSON", p)
			}
			if !ok {
				if h != (engine.Hypothesis{}) {
					t.Fatalf("decode(%q) = %+v with ok false", p, h)
				}
				continue
			}
			if !utf8.ValidString(h.Text) {
				t.Fatalf("decode(%q) text %q is not UTF-8", p, h.Text)
			}
			if h.Final {
				if h.Stable != len(h.Text) {
					t.Fatalf("decode(%q) final %+v does not promise its whole text", p, h)
				}
				if h.Text == "" && shown == "" {
					t.Fatalf("decode(%q) empty final with no interim to replace", p)
				}
				shown = ""
				continue
			}
			switch {
			case h.Stable != 0:
				t.Fatalf("decode(%q) interim %+v promises stability Vosk does not give", p, h)
			case h.Text == "":
				t.Fatalf("decode(%q) empty interim", p)
			case h.Text == shown:
				t.Fatalf("decode(%q) repeats the interim %q", p, shown)
			case h.Start != 0 || h.End != 0:
				t.Fatalf("decode(%q) interim %+v placed in time without words", p, h)
			}
			shown = h.Text
		}
	})
}
