//go:build cgo

package client_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/worker/opus"
)

// speechLike returns n samples of a 220 Hz tone swelling four times a
// second, starting at sample offset at.
func speechLike(at, n int) []int16 {
	out := make([]int16, n)
	for i := range out {
		tt := float64(at+i) / opus.SampleRate
		out[i] = int16(6000 * (0.6 + 0.4*math.Sin(2*math.Pi*4*tt)) * math.Sin(2*math.Pi*220*tt))
	}
	return out
}

// opusPackets returns k 100 ms packets of speechLike, as the worker
// encodes them.
func opusPackets(t *testing.T, k int) [][]byte {
	t.Helper()
	enc, err := opus.NewEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := range k {
		p, err := enc.Encode(speechLike(i*opus.PacketSamples, opus.PacketSamples))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// openCodecListener joins session id in lang taking codec.
func openCodecListener(t *testing.T, e *env, id, lang, codec string, binary bool) (*client.Listener, *recorder) {
	t.Helper()
	return openListener(t, e, id, lang, binary, func(l *client.Listener) { l.Codec = codec })
}

func (r *recorder) snapshot() []client.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]client.Frame(nil), r.frames...)
}

// TestOpusSpeaker: a Go speaker with Codec opus sends 100 ms packets; a
// listener of Opus gets them byte for byte as Opus frames, in binary and
// in JSON mode, and says so on joining; a listener of PCM (the default)
// gets the server's decoding of them, 100 ms PCM chunks, as loud as the
// packets decoded here.
func TestOpusSpeaker(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	s := client.NewSpeaker(e.URL, e.token("alice"))
	s.SessionID, s.Codec = id, client.CodecOpus
	var (
		mu        sync.Mutex
		connected []client.SpeakerConnected
		errs      []error
	)
	s.OnConnected = func(c client.SpeakerConnected) {
		mu.Lock()
		connected = append(connected, c)
		mu.Unlock()
	}
	s.OnError = func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	mu.Lock()
	if len(connected) != 1 || connected[0].Codec != client.CodecOpus {
		t.Errorf("speakerConnected %+v, want codec opus", connected)
	}
	mu.Unlock()
	_, bin := openCodecListener(t, e, id, "en", client.CodecOpus, true)
	_, js := openCodecListener(t, e, id, "en", client.CodecOpus, false)
	_, pcm := openCodecListener(t, e, id, "en", "", true)
	for r, want := range map[*recorder]string{bin: client.CodecOpus, js: client.CodecOpus, pcm: client.CodecPCM} {
		r.mu.Lock()
		if j := r.joins[0]; j.Codec != want {
			t.Errorf("joined with codec %q, want %q", j.Codec, want)
		}
		r.mu.Unlock()
	}
	packets := opusPackets(t, 20)
	for _, p := range packets {
		if err := s.SendAudio(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	pollFrames(t, e, bin, len(packets))
	pollFrames(t, e, js, len(packets))
	for _, r := range []*recorder{bin, js} {
		for i, f := range r.snapshot() {
			if f.Codec != client.CodecOpus || !bytes.Equal(f.Data, packets[i]) {
				t.Fatalf("frame %d: codec %q, %d bytes; want packet %d (%d bytes) as Opus", i, f.Codec, len(f.Data), i, len(packets[i]))
			}
		}
	}
	// The PCM stream: the packets decoded, in 100 ms chunks.
	pollFrames(t, e, pcm, len(packets))
	d := client.NewDecoder()
	var got []int16
	for _, f := range pcm.snapshot() {
		if f.Codec != client.CodecPCM || len(f.Data) != 2*opus.PacketSamples {
			t.Fatalf("PCM listener got a %q frame of %d bytes, want 100 ms of PCM", f.Codec, len(f.Data))
		}
		out, err := d.Decode(f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out...)
	}
	in := speechLike(0, len(got))
	if r := rms(got[opus.SampleRate/10:]) / rms(in[opus.SampleRate/10:]); r < 0.7 || r > 1.3 {
		t.Errorf("PCM listener's audio at %.2f of the input's level", r)
	}
	// A packet that breaks Opus's framing gets a reply error; the
	// connection stays and the next packet goes through.
	before := bin.frameCount()
	if err := s.SendAudio(context.Background(), []byte{0x4b}); err != nil {
		t.Fatal(err)
	}
	if err := s.SendAudio(context.Background(), packets[0]); err != nil {
		t.Fatal(err)
	}
	pollFrames(t, e, bin, before+1)
	poll(t, "INVALID_AUDIO_CHUNK", func() bool {
		mu.Lock()
		defer mu.Unlock()
		var ce *client.Error
		return len(errs) == 1 && errors.As(errs[0], &ce) && ce.Code == "INVALID_AUDIO_CHUNK"
	})
	if f := bin.snapshot()[before]; !bytes.Equal(f.Data, packets[0]) {
		t.Fatalf("after the refused packet: %d bytes, want the good packet", len(f.Data))
	}
	// After a lost connection both come back on their codecs.
	e.cutAll()
	poll(t, "the listener to reconnect", func() bool { return bin.joinCount(false, true) == 1 })
	before = bin.frameCount()
	for _, p := range packets[:2] {
		if err := s.SendAudio(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	pollFrames(t, e, bin, before+2)
	bin.mu.Lock()
	rejoined := bin.joins[len(bin.joins)-1]
	bin.mu.Unlock()
	if f := bin.snapshot()[before+1]; rejoined.Codec != client.CodecOpus || f.Codec != client.CodecOpus || !bytes.Equal(f.Data, packets[1]) {
		t.Fatalf("after reconnecting: joined on %q, a %q frame of %d bytes", rejoined.Codec, f.Codec, len(f.Data))
	}
}

// TestOpusListenerCodec: a codec other than pcm or opus is refused before
// dialling, with the server's code.
func TestOpusListenerCodec(t *testing.T) {
	l := client.NewListener("http://127.0.0.1:1", "golden-eagle-427", "es")
	l.Codec = "mp3"
	err := l.Open(context.Background())
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != "VALIDATION_INVALID_FIELD" {
		t.Fatalf("Open with codec mp3: %v, want VALIDATION_INVALID_FIELD", err)
	}
	s := client.NewSpeaker("http://127.0.0.1:1", "token")
	s.SessionID, s.Codec = "golden-eagle-427", "flac"
	if err := s.Open(context.Background()); !errors.As(err, &ce) || ce.Code != "VALIDATION_INVALID_FIELD" {
		t.Fatalf("Speaker Open with codec flac: %v, want VALIDATION_INVALID_FIELD", err)
	}
}

// TestOpusWorker: the session list counts PCM listeners per language
// (pcmLanguages); a worker's PCM reaches listeners of both codecs until
// it publishes Opus; then listeners of Opus get its packets (with their
// source timestamps) and listeners of PCM only its PCM.
func TestOpusWorker(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	openSpeaker(t, e, "alice", id, false)
	_, op := openCodecListener(t, e, id, "es", client.CodecOpus, true)
	_, pc := openCodecListener(t, e, id, "es", client.CodecPCM, false)
	w := newRelayWorker(t, e, id, "es")
	poll(t, "pcmLanguages es: 1", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, s := range w.sessions {
			if s.SessionID == id && s.TakesOpus() && s.PCMLanguages["es"] == 1 && s.TargetLanguages["es"] == 2 {
				return true
			}
		}
		return false
	})
	ctx := context.Background()
	if err := w.Claim(ctx, id, "es"); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	pcmChunk := chunk(1, 640)
	if err := w.PublishAudioAt(ctx, id, "es", pcmChunk, at); err != nil {
		t.Fatal(err)
	}
	pollFrames(t, e, op, 1)
	pollFrames(t, e, pc, 1)
	if f := op.snapshot()[0]; f.Codec != client.CodecPCM || !bytes.Equal(f.Data, pcmChunk) || !f.Timestamp.Equal(at) {
		t.Fatalf("Opus listener before any Opus: %q frame of %d bytes at %v, want the PCM chunk at %v", f.Codec, len(f.Data), f.Timestamp, at)
	}
	packets := opusPackets(t, 3)
	for i, p := range packets {
		if err := w.PublishOpusAt(ctx, id, "es", p, at.Add(time.Duration(i)*100*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	// PCM after Opus, then one more packet: the PCM must not come
	// between them on the Opus stream.
	if err := w.PublishAudioAt(ctx, id, "es", chunk(2, 640), at); err != nil {
		t.Fatal(err)
	}
	packets = append(packets, packets[0])
	if err := w.PublishOpusAt(ctx, id, "es", packets[3], at.Add(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	pollFrames(t, e, pc, 2)
	pollFrames(t, e, op, 1+len(packets))
	for i, f := range op.snapshot()[1:] {
		if f.Codec != client.CodecOpus || !bytes.Equal(f.Data, packets[i]) || !f.Timestamp.Equal(at.Add(time.Duration(i)*100*time.Millisecond)) {
			t.Fatalf("Opus frame %d: %q, %d bytes at %v", i, f.Codec, len(f.Data), f.Timestamp)
		}
	}
	// The PCM stream got the PCM and no packet.
	for _, f := range pc.snapshot() {
		if f.Codec != client.CodecPCM {
			t.Fatalf("PCM listener got a %q frame", f.Codec)
		}
	}
	if n := pc.frameCount(); n != 2 {
		t.Fatalf("PCM listener got %d frames, want the 2 PCM chunks", n)
	}
	if n := op.frameCount(); n != 1+len(packets) {
		t.Fatalf("Opus listener got %d frames, want the first PCM chunk and the %d packets", n, len(packets))
	}
}
