package client

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"
)

// The fuzz targets read what a server sends the SDK; their corpora are in
// testdata/fuzz.

// FuzzDecodeMessage decodes a text message as a connection does, into
// its reused wireMsg after an earlier message with audio, and checks it
// against a decode into a fresh one: same result, same error, an error
// that can be logged, and audio as encoding/json decodes base64.
func FuzzDecodeMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte) {
		var reused, fresh wireMsg
		if err := json.Unmarshal([]byte(`{"type":"audio","sessionId":"s","audioData":"AAECAwQFBgcICQ=="}`), &reused); err != nil {
			t.Fatal(err)
		}
		reused.reset()
		err := json.Unmarshal(p, &reused)
		errFresh := json.Unmarshal(p, &fresh)
		if (err == nil) != (errFresh == nil) {
			t.Fatalf("reused message: %v; fresh one: %v", err, errFresh)
		}
		if err != nil {
			_ = err.Error() // the connection logs it
			return
		}
		if !bytes.Equal(reused.AudioData, fresh.AudioData) {
			t.Fatalf("audio %q in the reused message, %q in a fresh one", reused.AudioData, fresh.AudioData)
		}
		var std struct {
			AudioData []byte `json:"audioData"`
		}
		if err := json.Unmarshal(p, &std); err != nil || !bytes.Equal(std.AudioData, fresh.AudioData) {
			t.Fatalf("audio %q; encoding/json reads %q, %v", fresh.AudioData, std.AudioData, err)
		}
		audio := fresh.AudioData
		reused.AudioData, fresh.AudioData = nil, nil
		if !reflect.DeepEqual(reused, fresh) {
			t.Fatalf("reused message %+v, fresh one %+v", reused, fresh)
		}
		fresh.AudioData = audio
		if e := fresh.event(); e.Type != fresh.Type || e.SessionID != fresh.SessionID {
			t.Fatalf("event %+v of %+v", e, fresh)
		}
		if st := fresh.status(); st.SessionID != fresh.SessionID || len(st.Languages) != len(fresh.LanguageStatus) {
			t.Fatalf("status %+v of %+v", st, fresh)
		}
		if e := fresh.error(); e.Code != fresh.Code {
			t.Fatalf("error %+v of %+v", e, fresh)
		}
	})
}

// FuzzParseBinary: a binary frame is taken exactly when it has the
// 20-byte header of version 1 and kind 1 (PCM) or 2 (Opus) (docs/protocol.md,
// section 3.1), and then its fields and audio are the bytes at their
// offsets: written again, they are the frame.
func FuzzParseBinary(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte) {
		lang, seq, ts, codec, audio, ok := parseBinary(p)
		if want := len(p) >= 20 && p[0] == 1 && (p[1] == 1 || p[1] == 2); ok != want {
			t.Fatalf("ok = %v for % x", ok, p[:min(len(p), 20)])
		}
		if !ok {
			return
		}
		kind := map[string]byte{CodecPCM: 1, CodecOpus: 2}[codec]
		b := []byte{1, kind, lang[0], lang[1]}
		b = binary.BigEndian.AppendUint64(b, seq)
		b = binary.BigEndian.AppendUint64(b, uint64(ts))
		b = append(b, audio...)
		if !bytes.Equal(b, p) {
			t.Fatalf("frame % x read as %q, %d, %d, % x", p, lang, seq, ts, audio)
		}
	})
}
