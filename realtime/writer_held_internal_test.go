package realtime

import "testing"

// TestWriterKeepsHeldFrames: a writer that stops because its queue ends
// with held audio must leave that audio queued for the kick. It used to
// give the queue back when it had grown past 32 entries (after a burst
// such as a resume's replay), losing the held frames without a count.
func TestWriterKeepsHeldFrames(t *testing.T) {
	s := NewServer()
	c := tcpConns(t, s, 1)[0]
	m := encodeBinaryAudio(benchFrame())
	c.wmu.Lock()
	for range 40 {
		c.queue = append(c.queue, m)
	}
	c.holding, c.writing = true, true
	c.wmu.Unlock()

	c.writeLoop() // returns at once: the queue ends with held audio

	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.queue) != 40 {
		t.Fatalf("%d frames queued after the writer stopped at held audio, want 40", len(c.queue))
	}
	if c.writing {
		t.Fatal("writer still marked as writing")
	}
}
