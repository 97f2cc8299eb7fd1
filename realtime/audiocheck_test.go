package realtime_test

import (
	"encoding/binary"
	"testing"
)

// TestAudioWarning: a speaker whose microphone clips is warned, and told
// when it stops.
func TestAudioWarning(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	chunk := func(v int16) []byte {
		b := make([]byte, 640)
		for i := 0; i < 320; i++ {
			x := v
			if i%2 == 1 {
				x = -v
			}
			binary.LittleEndian.PutUint16(b[2*i:], uint16(x))
		}
		return b
	}
	for i := 0; i < 50; i++ { // one second, square wave at full scale
		sp.sendBinary(chunk(32767))
	}
	if m := sp.expect("audioWarning"); m.m["warning"] != "clipping" || m.m["value"] != 100.0 || m.m["sessionId"] != sess.ID {
		t.Fatalf("audioWarning = %v", m.m)
	}
	for i := 0; i < 150; i++ { // three seconds at -20 dBFS
		sp.sendBinary(chunk(3277))
	}
	if m := sp.expect("audioWarningCleared"); m.m["warning"] != "clipping" {
		t.Fatalf("audioWarningCleared = %v", m.m)
	}
}
