package deepgram

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/pentecost/pentecost/worker/engine"
)

// FuzzDecode feeds one stream a series of server messages (separated by
// NUL, which JSON text cannot hold; the corpus is in testdata/fuzz),
// parsed as read parses them, and checks what decode makes of each
// Results: one it cannot use is engine.ErrBadResponse and ends the
// stream; an interim is new, non-empty text with nothing promised stable;
// a final promises all its text; an empty final only comes to replace an
// interim on show.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &stream{}
		shown := "" // the interim on show since the last final
		for _, p := range bytes.Split(in, []byte{0}) {
			var m message
			if err := json.Unmarshal(p, &m.header); err != nil || m.Type != "Results" {
				continue // read ends the stream or passes the message by
			}
			if err := json.Unmarshal(p, &m); err != nil {
				return
			}
			h, ok, err := s.decode(&m)
			if err != nil {
				var e *engine.Error
				if !errors.As(err, &e) || e.Engine != Name || e.Code != engine.ErrBadResponse {
					t.Fatalf("decode(%q) error %v, want a %s from %s", p, err, engine.ErrBadResponse, Name)
				}
				if m.Channel != nil && len(m.Channel.Alternatives) > 0 {
					t.Fatalf("decode(%q) refused Results with an alternative: %v", p, err)
				}
				return
			}
			if !ok {
				continue
			}
			if !utf8.ValidString(h.Text) {
				t.Fatalf("decode(%q) text %q is not UTF-8", p, h.Text)
			}
			if h.Text != m.Channel.Alternatives[0].Transcript {
				t.Fatalf("decode(%q) text %q is not the first alternative's", p, h.Text)
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
				t.Fatalf("decode(%q) interim %+v promises stability Deepgram does not give", p, h)
			case h.Text == "":
				t.Fatalf("decode(%q) empty interim", p)
			case h.Text == shown:
				t.Fatalf("decode(%q) repeats the interim %q", p, shown)
			}
			shown = h.Text
		}
	})
}
