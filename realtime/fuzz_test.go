package realtime_test

import (
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
)

// FuzzDecodeMessage: any input decodes to a message with an action or to
// one of the two documented errors, and never panics.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"action":"heartbeat"}`,
		`{"action":"sendAudio","sessionId":"golden-eagle-427","audioData":"AAEC","sequenceNumber":7}`,
		`{"action":"setVolume","volumeLevel":0.5}`,
		`{"action":"changeLanguage","targetLanguage":"es"}`,
		`{"action":`, `[]`, `null`, `"x"`, ``, `{"action":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		m, err := realtime.DecodeMessage(p)
		if err != nil {
			if c := pentecost.ErrorCode(err); c != pentecost.EINVALIDMESSAGE && c != pentecost.EUNKNOWNACTION {
				t.Fatalf("code %s", c)
			}
			return
		}
		if m.Action == "" {
			t.Fatal("message without action accepted")
		}
	})
}
