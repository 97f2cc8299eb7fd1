package realtime_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"os"
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/opuspcm"
	"github.com/pentecost/pentecost/realtime"
)

// opusPackets returns 100 ms packets of speech and tone as Chromium's
// WebCodecs encoder made them (web/testdata/opus, 20 ms each), joined five
// to a packet as the protocol asks producers to send.
func opusPackets(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile("../web/testdata/opus/voip.bin")
	if err != nil {
		t.Fatal(err)
	}
	var small, out [][]byte
	for len(b) >= 2 {
		n := int(binary.LittleEndian.Uint16(b))
		small = append(small, b[2:2+n])
		b = b[2+n:]
	}
	for i := 0; i+5 <= len(small); i += 5 {
		p, err := opuspcm.Join(small[i : i+5])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// decodePCM decodes packets as the server does, for comparison.
func decodePCM(t testing.TB, packets [][]byte) [][]byte {
	d, err := opuspcm.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, p := range packets {
		chunks, err := d.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, chunks...)
	}
	return out
}

// nextFrame returns c's next binary audio frame, skipping text messages.
func (c *client) nextFrame() realtime.BinaryFrame {
	c.t.Helper()
	m, err := c.nextBinary()
	if err != nil {
		c.t.Fatal(err)
	}
	f, err := realtime.DecodeBinaryFrame(m.data)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// TestOpusSpeaker: an Opus speaker's packets reach listeners who take
// Opus byte for byte, in binary (kind 2) and JSON (codec "opus"); the
// original system's clients, and workers, get the same speech decoded
// once to PCM in 100 ms chunks, with no codec field.
func TestOpusSpeaker(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	q := "sessionId=" + sess.ID + "&targetLanguage=en"
	ob := e.dial(q + "&audioFormat=binary&codec=opus")
	if m := ob.expect("sessionJoined"); m.m["codec"] != "opus" {
		t.Fatalf("sessionJoined codec = %v", m.m["codec"])
	}
	oj := e.dial(q + "&codec=opus")
	oj.expect("sessionJoined")
	legacy := e.dial(q)
	if m := legacy.expect("sessionJoined"); m.m["codec"] != "pcm" {
		t.Fatalf("legacy sessionJoined codec = %v", m.m["codec"])
	}
	w := e.dial("role=worker", dialOpts{header: http.Header{"Authorization": {"Bearer worker-secret"}}})
	w.expect("workerConnected")
	w.send(map[string]any{"action": "subscribeSession", "sessionId": sess.ID})
	w.expect("subscribed")

	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice") + "&codec=opus")
	if m := sp.expect("speakerConnected"); m.m["codec"] != "opus" {
		t.Fatalf("speakerConnected codec = %v", m.m["codec"])
	}
	packets := opusPackets(t)
	for i, p := range packets {
		if i%2 == 0 {
			sp.sendBinary(p)
		} else {
			sp.send(map[string]any{"action": "sendAudio", "audioData": base64.StdEncoding.EncodeToString(p)})
		}
	}
	for i, p := range packets {
		f := ob.nextFrame()
		if f.Codec != pentecost.CodecOpus || f.Seq != uint64(i+1) || f.Language != "en" || !bytes.Equal(f.Audio, p) {
			t.Fatalf("binary Opus frame %d: codec %q seq %d, %d bytes", i, f.Codec, f.Seq, len(f.Audio))
		}
		m := oj.expect("audioData")
		got, _ := base64.StdEncoding.DecodeString(m.m["audioData"].(string))
		if m.m["codec"] != "opus" || !bytes.Equal(got, p) {
			t.Fatalf("JSON Opus frame %d: codec %v, %d bytes", i, m.m["codec"], len(got))
		}
	}
	for i, want := range decodePCM(t, packets) {
		for _, c := range []*client{legacy, w} {
			m := c.expect("audioData")
			got, _ := base64.StdEncoding.DecodeString(m.m["audioData"].(string))
			if _, ok := m.m["codec"]; ok || !bytes.Equal(got, want) || m.m["sequenceNumber"] != float64(i+1) {
				t.Fatalf("PCM chunk %d: codec %v, seq %v, %d bytes (want %d, the server's decoding)", i, m.m["codec"], m.m["sequenceNumber"], len(got), len(want))
			}
		}
	}
}

// TestOpusListenerOfPCMSpeaker: without an encoder in the server, a
// listener who takes Opus gets a PCM speaker's chunks, marked PCM (kind 1),
// on its own stream, and keeps its codec when it changes language.
func TestOpusListenerOfPCMSpeaker(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	ob := e.dial("sessionId=" + sess.ID + "&targetLanguage=en&audioFormat=binary&codec=opus")
	ob.expect("sessionJoined")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	for i := 1; i <= 5; i++ {
		sp.sendBinary(audio(i, 640))
	}
	for i := 1; i <= 5; i++ {
		f := ob.nextFrame()
		if f.Codec != pentecost.CodecPCM || f.Seq != uint64(i) || !bytes.Equal(f.Audio, audio(i, 640)) {
			t.Fatalf("frame %d: codec %q seq %d", i, f.Codec, f.Seq)
		}
	}
}

// TestOpusWorker: a worker's Opus goes to listeners who take Opus, its PCM
// to the others (and to Opus listeners only until it sends Opus), captions
// to both; its demand counts the PCM listeners apart.
func TestOpusWorker(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	q := "sessionId=" + sess.ID + "&targetLanguage=es&audioFormat=binary"
	op := e.dial(q + "&codec=opus")
	op.expect("sessionJoined")
	pcm := e.dial(q)
	pcm.expect("sessionJoined")
	w := e.dial("role=worker", dialOpts{header: http.Header{"Authorization": {"Bearer worker-secret"}}})
	hello := w.expect("workerConnected")
	s0 := hello.m["sessions"].([]any)[0].(map[string]any)
	if s0["targetLanguages"].(map[string]any)["es"] != 2.0 || s0["pcmLanguages"].(map[string]any)["es"] != 1.0 {
		t.Fatalf("demand = %v", s0)
	}
	w.send(map[string]any{"action": "subscribeSession", "sessionId": sess.ID})
	w.expect("subscribed")
	w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
	w.expect("languageClaimed")
	pub := func(codec string, data []byte) {
		m := map[string]any{"action": "publishAudio", "sessionId": sess.ID, "targetLanguage": "es", "audioData": base64.StdEncoding.EncodeToString(data)}
		if codec != "" {
			m["codec"] = codec
		}
		w.send(m)
	}
	packets := opusPackets(t)

	t.Run("ErrBadCodec", func(t *testing.T) {
		pub("mp3", audio(1, 640))
		if m := w.expect("error"); m.m["code"] != pentecost.EVALIDATIONFIELD || m.m["details"].(map[string]any)["field"] != "codec" {
			t.Fatalf("error = %v", m.m)
		}
	})
	t.Run("ErrNotOpus", func(t *testing.T) {
		pub("opus", []byte{0x08 | 3, 0}) // code 3 with no frames
		if m := w.expect("error"); m.m["code"] != pentecost.EINVALIDAUDIO || m.m["action"] != "publishAudio" {
			t.Fatalf("error = %v", m.m)
		}
	})

	pub("", audio(1, 640)) // no Opus yet: both get it
	if f := op.nextFrame(); f.Codec != pentecost.CodecPCM || !bytes.Equal(f.Audio, audio(1, 640)) {
		t.Fatalf("Opus listener before any Opus: %+v", f.Codec)
	}
	if f := pcm.nextFrame(); !bytes.Equal(f.Audio, audio(1, 640)) {
		t.Fatal("PCM listener missed PCM")
	}
	pub("opus", packets[0])
	pub("", audio(2, 640)) // from now on PCM only to PCM listeners
	pub("opus", packets[1])
	w.send(map[string]any{"action": "publishCaption", "sessionId": sess.ID, "targetLanguage": "es", "text": "hola", "final": true})
	for i, want := range [][]byte{packets[0], packets[1]} {
		if f := op.nextFrame(); f.Codec != pentecost.CodecOpus || !bytes.Equal(f.Audio, want) || f.Seq != uint64(i+2) {
			t.Fatalf("Opus listener frame %d: codec %q seq %d", i, f.Codec, f.Seq)
		}
	}
	if f := pcm.nextFrame(); f.Codec != pentecost.CodecPCM || !bytes.Equal(f.Audio, audio(2, 640)) || f.Seq != 2 {
		t.Fatalf("PCM listener: codec %q seq %d", f.Codec, f.Seq)
	}
	for _, c := range []*client{op, pcm} {
		if m := c.expect("caption"); m.m["text"] != "hola" {
			t.Fatalf("caption = %v", m.m)
		}
	}
	// The PCM listener heard no Opus, the Opus listener no second PCM chunk:
	// the next frame each gets is the next published.
	pub("", audio(3, 640))
	pub("opus", packets[2])
	if f := op.nextFrame(); f.Codec != pentecost.CodecOpus || !bytes.Equal(f.Audio, packets[2]) {
		t.Fatalf("Opus listener got codec %q", f.Codec)
	}
	if f := pcm.nextFrame(); f.Codec != pentecost.CodecPCM || !bytes.Equal(f.Audio, audio(3, 640)) {
		t.Fatalf("PCM listener got codec %q", f.Codec)
	}

	t.Run("ChangeLanguageKeepsCodec", func(t *testing.T) {
		op.send(map[string]any{"action": "changeLanguage", "targetLanguage": "en"})
		op.expect("languageChanged")
		sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice") + "&codec=opus")
		sp.expect("speakerConnected")
		sp.sendBinary(packets[3])
		if f := op.nextFrame(); f.Codec != pentecost.CodecOpus || f.Language != "en" || !bytes.Equal(f.Audio, packets[3]) {
			t.Fatalf("after changeLanguage: codec %q language %q", f.Codec, f.Language)
		}
	})
}

// TestOpusBadInput: what an Opus speaker or a listener can get wrong is
// refused with a documented code, and the connection carries on.
func TestOpusBadInput(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")

	t.Run("ErrUnknownCodec", func(t *testing.T) {
		c := e.dial("sessionId=" + sess.ID + "&targetLanguage=en&codec=aac")
		m := c.expect("error")
		if m.m["code"] != pentecost.EVALIDATIONFIELD || m.m["details"].(map[string]any)["field"] != "codec" {
			t.Fatalf("error = %v", m.m)
		}
	})

	ob := e.dial("sessionId=" + sess.ID + "&targetLanguage=en&audioFormat=binary&codec=opus")
	ob.expect("sessionJoined")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice") + "&codec=opus")
	sp.expect("speakerConnected")
	good := opusPackets(t)
	for _, bad := range [][]byte{
		{0x08 | 3, 0},        // code 3, no frames (RFC 6716 R5)
		{0x08 | 1, 1, 2, 3},  // code 1 of odd length (R3)
		make([]byte, 33<<10), // over the chunk bound
	} {
		sp.sendBinary(bad)
		if m := sp.expect("error"); m.m["code"] != pentecost.EINVALIDAUDIO {
			t.Fatalf("packet of %d bytes: %v", len(bad), m.m)
		}
	}
	// The connection and the stream carry on: the next good packet is the
	// listener's first frame.
	sp.sendBinary(good[1])
	if f := ob.nextFrame(); f.Seq != 1 || !bytes.Equal(f.Audio, good[1]) {
		t.Fatalf("after bad packets: seq %d", f.Seq)
	}
}
