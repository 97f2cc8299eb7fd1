package worker_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/opuspcm"
	"github.com/pentecost/pentecost/worker"
	"github.com/pentecost/pentecost/worker/opus"
)

// codecListener is a listener of one codec that keeps every frame and
// the audio decoded from them (client.Decoder), sample for sample.
type codecListener struct {
	*client.Listener
	mu     sync.Mutex
	frames []client.Frame
	pcm    []int16
	dec    *client.Decoder
	errs   []error
}

func (e *env) listenCodec(id, lang, codec string) *codecListener {
	e.t.Helper()
	l := &codecListener{Listener: client.NewListener(e.URL, id, lang), dec: client.NewDecoder()}
	l.Binary, l.Codec = true, codec
	l.OnAudio = func(f client.Frame) {
		l.mu.Lock()
		defer l.mu.Unlock()
		pcm, err := l.dec.Decode(f)
		if err != nil {
			l.errs = append(l.errs, err)
		}
		l.pcm = append(l.pcm, pcm...)
		f.Data = bytes.Clone(f.Data)
		l.frames = append(l.frames, f)
	}
	l.OnCaption = func(c client.Caption) {
		l.mu.Lock()
		l.dec.Advance(c.Seq)
		l.mu.Unlock()
	}
	if err := l.Open(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = l.Close() })
	return l
}

func (l *codecListener) samples() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.pcm)
}

func (l *codecListener) snapshot() ([]client.Frame, []int16, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]client.Frame(nil), l.frames...), append([]int16(nil), l.pcm...), append([]error(nil), l.errs...)
}

// TestOpusPublish: the worker publishes each language's speech once as
// Opus, in 100 ms packets, to listeners who take Opus, each packet
// stamped with the source time of its first sample, as its PCM frames
// are; and PCM only while a listener of the language takes PCM. Decoded,
// the Opus is as long as the PCM and as loud. In a build without cgo the
// worker has no encoder: it publishes PCM, which listeners of Opus get
// too.
func TestOpusPublish(t *testing.T) {
	_, err := opus.NewEncoder(0)
	encodes := err == nil
	if !encodes && !errors.Is(err, opus.ErrNoCgo) {
		t.Fatal(err)
	}
	tk := newTalk(1500*time.Millisecond, "First we pray together.", "Then we sing loudly.", "Finally we go home.")
	f := newFakes(tk)
	e := newEnv(t)
	id := e.createSession()
	spk := e.speaker(id)
	op := e.listenCodec(id, "es", client.CodecOpus)
	pc := e.listenCodec(id, "es", client.CodecPCM)
	_, reg := e.startWorker(f.engines())
	poll(t, 5*time.Second, "Spanish to become available", func() bool {
		return metric(t, reg, "pentecost_worker_languages", nil) == 1
	})
	// pcmLanguages reaches the worker: it publishes PCM for Spanish
	// (which it would without an encoder anyway).
	pcmLangs := func(n float64) func() bool {
		return func() bool { return metric(t, reg, "pentecost_worker_pcm_languages", nil) == n }
	}
	poll(t, 10*time.Second, "Spanish in PCM", pcmLangs(1))
	es := map[string]string{"language": "es"}
	bytesOf := func(codec string) float64 {
		return metric(t, reg, "pentecost_worker_audio_bytes_total", map[string]string{"language": "es", "codec": codec})
	}
	// split is where the talk is cut after sentence i: half a gap after it.
	split := func(i int) int {
		if i == len(tk.ends)-1 {
			return len(tk.pcm)
		}
		return int((tk.ends[i] + 750*time.Millisecond).Seconds() * worker.SampleRate)
	}

	// 1. Both codecs have listeners.
	stream(t, spk, tk.pcm[:split(0)])
	poll(t, 30*time.Second, "the first sentence's speech to reach both listeners", func() bool {
		published := int(metric(t, reg, "pentecost_worker_audio_seconds_total", es)*worker.SampleRate + 0.5)
		return metric(t, reg, "pentecost_worker_segments_spoken_total", es) == 1 && published > 0 &&
			op.samples() == published && pc.samples() == published
	})
	opFrames, opPCM, opErrs := op.snapshot()
	pcFrames, pcPCM, pcErrs := pc.snapshot()
	if len(opErrs)+len(pcErrs) > 0 {
		t.Fatalf("decoding: %v %v", opErrs, pcErrs)
	}
	want := client.CodecPCM
	if encodes {
		want = client.CodecOpus
	}
	// Where each PCM frame starts, and when it was stamped.
	stamps := map[int]time.Time{}
	at := 0
	for _, f := range pcFrames {
		if f.Codec != client.CodecPCM {
			t.Fatalf("PCM listener got a %q frame", f.Codec)
		}
		stamps[at] = f.Timestamp
		at += len(f.Data) / 2
	}
	at = 0
	var full int
	for i, f := range opFrames {
		if f.Codec != want {
			t.Fatalf("Opus listener's frame %d is %q, want %q", i, f.Codec, want)
		}
		if ts, ok := stamps[at]; !ok || !ts.Equal(f.Timestamp) {
			t.Fatalf("frame %d at sample %d stamped %v; the PCM frame there %v", i, at, f.Timestamp, ts)
		}
		n := len(f.Data) / 2
		if f.Codec == client.CodecOpus {
			d, err := opuspcm.Duration(f.Data)
			if err != nil {
				t.Fatal(err)
			}
			n = int(d * worker.SampleRate / time.Second)
			if n == opus.PacketSamples {
				full++
			}
		}
		at += n
	}
	if encodes && full < len(opPCM)/opus.PacketSamples-1 {
		t.Errorf("%d of %d packets are 100 ms, for %d samples", full, len(opFrames), len(opPCM))
	}
	// Decoded, the Opus is the PCM's level (past the decoder's start).
	skip := opus.SampleRate / 10
	if r := worker.RMS(opPCM[skip:]) / worker.RMS(pcPCM[skip:]); r < 0.7 || r > 1.3 {
		t.Errorf("Opus decoded at %.2f of the PCM's level", r)
	}
	t.Logf("sentence 1: %d samples; Opus listener %d frames (%d of 100 ms, %.0f bytes), PCM listener %d frames (%.0f bytes)",
		len(pcPCM), len(opFrames), full, bytesOf(client.CodecOpus), len(pcFrames), bytesOf(client.CodecPCM))

	// 2. The listener of PCM leaves: the worker stops sending PCM.
	_ = pc.Close()
	if encodes {
		poll(t, 10*time.Second, "Spanish no longer in PCM", pcmLangs(0))
	}
	pcmBefore, opusBefore, opBefore := bytesOf(client.CodecPCM), bytesOf(client.CodecOpus), op.samples()
	secondsBefore := metric(t, reg, "pentecost_worker_audio_seconds_total", es)
	stream(t, spk, tk.pcm[split(0):split(1)])
	poll(t, 30*time.Second, "the second sentence's speech to reach the listener of Opus", func() bool {
		published := int((metric(t, reg, "pentecost_worker_audio_seconds_total", es)-secondsBefore)*worker.SampleRate + 0.5)
		return metric(t, reg, "pentecost_worker_segments_spoken_total", es) == 2 && published > 0 && op.samples()-opBefore == published
	})
	if encodes {
		if got := bytesOf(client.CodecPCM); got != pcmBefore {
			t.Errorf("%.0f bytes of PCM published with no listener of PCM", got-pcmBefore)
		}
		if bytesOf(client.CodecOpus) <= opusBefore {
			t.Error("no Opus published for the second sentence")
		}
	} else if bytesOf(client.CodecPCM) <= pcmBefore {
		t.Error("without an encoder, no PCM published for the second sentence")
	}

	// 3. A listener of PCM comes: PCM again.
	pc2 := e.listenCodec(id, "es", client.CodecPCM)
	poll(t, 10*time.Second, "Spanish in PCM again", pcmLangs(1))
	secondsBefore = metric(t, reg, "pentecost_worker_audio_seconds_total", es)
	stream(t, spk, tk.pcm[split(1):])
	poll(t, 30*time.Second, "the third sentence's speech to reach the new listener of PCM", func() bool {
		published := int((metric(t, reg, "pentecost_worker_audio_seconds_total", es)-secondsBefore)*worker.SampleRate + 0.5)
		return metric(t, reg, "pentecost_worker_segments_spoken_total", es) == 3 && published > 0 && pc2.samples() == published
	})
}
