package redis

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/pentecost/pentecost"
)

// The fuzz targets read what another node (or anything else with access
// to Redis) left there: their corpora are in testdata/fuzz.

// FuzzDecodeFrame: any payload decodes or fails with errBadFrame; a decoded
// frame encodes again, and that decodes to the same frame. Audio and
// caption frames come back byte for byte (flag bits other than "final"
// aside); an event's JSON may be written differently but means the same.
func FuzzDecodeFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte, seq uint64, epoch string) {
		fr, err := decodeFrame(string(p), seq, epoch)
		if err != nil {
			if !errors.Is(err, errBadFrame) {
				t.Fatalf("error %v is not errBadFrame", err)
			}
			return
		}
		if fr.Seq != seq || fr.Epoch != epoch {
			t.Fatalf("seq, epoch = %d, %q; want %d, %q", fr.Seq, fr.Epoch, seq, epoch)
		}
		if len(fr.Language) != int(p[3]) {
			t.Fatalf("language of %d bytes, header says %d", len(fr.Language), p[3])
		}
		if fr.Kind != pentecost.FrameEvent && fr.Event != nil {
			t.Fatalf("kind %d with an event", fr.Kind)
		}
		b, err := encodeFrame(fr)
		if err != nil {
			t.Fatalf("a decoded frame does not encode: %v", err)
		}
		if fr.Kind != pentecost.FrameEvent {
			want := bytes.Clone(p)
			keep := byte(flagFinal)
			if fr.Kind != pentecost.FrameCaption {
				keep |= flagOpus // audio's codec (and that of unknown kinds)
			}
			want[2] &= keep
			if !bytes.Equal(b, want) {
				t.Fatalf("re-encoded as\n%q\nwant\n%q", b, want)
			}
		}
		again, err := decodeFrame(string(b), seq, epoch)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		sameFrame(t, again, fr)
	})
}

// FuzzDecodeMessage: a Pub/Sub message decodes only when it is
// "<seq> <epoch> <payload>" with a decimal seq, into that seq and epoch
// and the payload's frame; the message written again from the frame
// decodes to the same frame.
func FuzzDecodeMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, msg string) {
		fr, err := decodeMessage(msg)
		if err != nil {
			if !errors.Is(err, errBadFrame) {
				t.Fatalf("error %v is not errBadFrame", err)
			}
			return
		}
		seqText, rest, _ := strings.Cut(msg, " ")
		epoch, payload, _ := strings.Cut(rest, " ")
		if n, err := strconv.ParseUint(seqText, 10, 64); err != nil || n != fr.Seq {
			t.Fatalf("seq %d from %q (%v)", fr.Seq, seqText, err)
		}
		if fr.Epoch != epoch {
			t.Fatalf("epoch %q, want %q", fr.Epoch, epoch)
		}
		direct, err := decodeFrame(payload, fr.Seq, epoch)
		if err != nil {
			t.Fatalf("payload alone does not decode: %v", err)
		}
		sameFrame(t, fr, direct)
		b, err := encodeFrame(fr)
		if err != nil {
			t.Fatalf("a decoded frame does not encode: %v", err)
		}
		again, err := decodeMessage(strconv.FormatUint(fr.Seq, 10) + " " + fr.Epoch + " " + string(b))
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		sameFrame(t, again, fr)
	})
}

// FuzzDecodeSession: a stored session is JSON or an error; a decoded one
// stores and reads back the same.
func FuzzDecodeSession(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decodeSession(data)
		if err != nil {
			return
		}
		b, err := encodeSession(s)
		if err != nil {
			t.Fatalf("a decoded session does not encode: %v", err)
		}
		again, err := decodeSession(b)
		if err != nil {
			t.Fatalf("re-encoded session %s does not decode: %v", b, err)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip changed the session:\n got %+v\nwant %+v", again, s)
		}
	})
}

func sameFrame(t *testing.T, got, want *pentecost.Frame) {
	t.Helper()
	switch {
	case got.Kind != want.Kind, got.Language != want.Language, got.Seq != want.Seq, got.Epoch != want.Epoch,
		got.Final != want.Final, got.Codec != want.Codec, got.Text != want.Text, !bytes.Equal(got.Data, want.Data):
		t.Fatalf("frame changed:\n got %+v\nwant %+v", got, want)
	case !got.Time.Equal(want.Time), got.SourceTime.IsZero() != want.SourceTime.IsZero(), !got.SourceTime.Equal(want.SourceTime):
		t.Fatalf("frame times changed: got %v, %v; want %v, %v", got.Time, got.SourceTime, want.Time, want.SourceTime)
	case (got.Event == nil) != (want.Event == nil):
		t.Fatalf("event %v, want %v", got.Event, want.Event)
	case got.Event != nil && !reflect.DeepEqual(eventRecordOf(got.Event), eventRecordOf(want.Event)):
		t.Fatalf("event changed:\n got %+v\nwant %+v", eventRecordOf(got.Event), eventRecordOf(want.Event))
	}
}
