package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/pentecost/pentecost/client"
)

// A listener that hears a session in Spanish, in binary mode, until the
// session ends.
func ExampleListener() {
	ctx := context.Background()
	l := client.NewListener("https://pentecost.example.org", "golden-eagle-427", "es")
	l.Binary = true
	l.OnAudio = func(f client.Frame) {
		// f.Data is only valid here: hand a copy to the audio device.
		play(f.Seq, append([]byte(nil), f.Data...))
	}
	l.OnCaption = func(c client.Caption) {
		if c.Final {
			fmt.Println(c.Text)
		}
	}
	l.OnEvent = func(e client.Event) {
		switch e.Type {
		case client.EventTranslationUnavailable:
			fmt.Println("No Spanish yet:", e.Message)
		case client.EventSessionPaused:
			fmt.Println("The speaker paused.")
		case client.EventStreamGap:
			fmt.Printf("Lost audio %d–%d\n", e.LastSequenceNumber+1, e.FirstSequenceNumber-1)
		}
	}
	if err := l.Open(ctx); err != nil {
		var e *client.Error
		if errors.As(err, &e) && e.Code == "SESSION_NOT_FOUND" {
			fmt.Println("No such session.")
			return
		}
		log.Fatal(err)
	}
	defer l.Close()
	<-l.Done()
	fmt.Println("Stopped:", l.Err())
}

// A listener that takes Opus, about a tenth of PCM's bytes, and plays it
// through a Decoder: it decodes Opus in pure Go, plays the PCM frames an
// Opus stream may carry too, and fills the time of lost frames.
func ExampleDecoder() {
	ctx := context.Background()
	l := client.NewListener("https://pentecost.example.org", "golden-eagle-427", "es")
	l.Binary, l.Codec = true, client.CodecOpus
	dec := client.NewDecoder()
	l.OnAudio = func(f client.Frame) {
		pcm, err := dec.Decode(f) // 16 kHz mono samples, valid until the next call
		if err != nil {
			log.Print(err) // a packet that does not decode is made up for by the next
			return
		}
		playSamples(f.Timestamp, append([]int16(nil), pcm...))
	}
	// Captions share the stream's sequence numbers: they are no lost audio.
	l.OnCaption = func(c client.Caption) { dec.Advance(c.Seq) }
	l.OnEvent = func(e client.Event) {
		switch e.Type {
		case client.EventStreamGap, client.EventAudioSkipped, client.EventLanguageChanged, client.EventPlaybackResumed:
			dec.Reset() // start afresh: nothing to make up
		}
	}
	if err := l.Open(ctx); err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	<-l.Done()
}

// A speaker that creates a session the way the original system's clients
// did and streams 20 ms chunks into it.
func ExampleSpeaker() {
	ctx := context.Background()
	s := client.NewSpeaker("https://pentecost.example.org", "<speaker JWT>")
	s.SourceLanguage = "en"
	s.OnStatus = func(st client.Status) {
		fmt.Printf("%d listeners %v\n", st.ListenerCount, st.LanguageDistribution)
	}
	if err := s.Open(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("Share this code:", s.Session())

	chunk := make([]byte, 640) // 20 ms of 16 kHz 16-bit mono
	for range 50 * 60 {
		record(chunk)
		if err := s.SendAudio(ctx, chunk); err != nil {
			log.Fatal(err)
		}
	}
	if err := s.End(ctx); err != nil {
		log.Fatal(err)
	}
}

// A speaker that sends Opus: one packet per SendAudio, 100 ms each as
// the protocol recommends. encodeOpus stands for an Opus encoder (for
// example the worker's, worker/opus). Listeners of PCM hear the server's
// decoding of it.
func ExampleSpeaker_opus() {
	ctx := context.Background()
	s := client.NewSpeaker("https://pentecost.example.org", "<speaker JWT>")
	s.SessionID, s.Codec = "golden-eagle-427", client.CodecOpus
	s.OnError = func(err error) { log.Print(err) } // e.g. INVALID_AUDIO_CHUNK for a packet that is not Opus
	if err := s.Open(ctx); err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	samples := make([]int16, client.SampleRate/10) // 100 ms
	for range 10 * 60 {
		record16(samples)
		if err := s.SendAudio(ctx, encodeOpus(samples)); err != nil {
			log.Fatal(err)
		}
	}
}

// A worker that offers French for every session whose listeners want it.
// translate stands for a real speech-to-speech engine. A worker that can
// encode Opus publishes it with PublishOpusAt, and its PCM only while
// WorkerSession.PCMLanguages counts listeners of PCM.
func ExampleWorker() {
	ctx := context.Background()
	w := client.NewWorker("https://pentecost.example.org", "<worker secret>")
	wanted := make(chan string, 16)
	w.OnSessions = func(sessions []client.WorkerSession) {
		for _, s := range sessions {
			if s.TargetLanguages["fr"] > 0 {
				wanted <- s.SessionID
			}
		}
	}
	source := make(chan client.Frame, 256)
	w.OnAudio = func(f client.Frame) {
		f.Data = append([]byte(nil), f.Data...) // keep it beyond the callback
		source <- f
	}
	if err := w.Open(ctx); err != nil {
		log.Fatal(err)
	}
	defer w.Close()

	go func() {
		// Subscribe and Claim wait for the server's reply, so they run here
		// rather than in a callback.
		seen := map[string]bool{}
		for id := range wanted {
			if seen[id] {
				continue
			}
			seen[id] = true
			if err := w.Subscribe(ctx, id, client.Live); err != nil {
				log.Print(err)
				continue
			}
			if err := w.Claim(ctx, id, "fr"); err != nil {
				log.Print(err)
			}
		}
	}()
	for f := range source {
		audio, text := translate(f.Data, "fr")
		_ = w.PublishAudio(ctx, f.SessionID, "fr", audio)
		_ = w.PublishCaption(ctx, f.SessionID, "fr", text, true)
	}
}

// Classify tells whether a connection that ended should be tried again.
func ExampleClassify() {
	err := &client.CloseError{Code: client.ClosePolicy, Err: &client.Error{Code: "RATE_LIMIT_EXCEEDED", RetryAfter: 30 * time.Second}}
	d := client.Classify(err)
	fmt.Println(d.Retry, d.After)
	// Output: true 30s
}

func play(uint64, []byte)                       {}
func playSamples(time.Time, []int16)            {}
func record16([]int16)                          {}
func encodeOpus([]int16) []byte                 { return []byte{0xf8} }
func record([]byte)                             {}
func translate([]byte, string) ([]byte, string) { return make([]byte, 640), "" }
