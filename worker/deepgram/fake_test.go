package deepgram

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// fakeDeepgram speaks the live streaming API as testdata/ records it. It
// "hears" one word of its script per audio chunk: after the n-th chunk it
// sends an interim Results of the first n words covering the audio so far;
// CloseStream brings the final Results of the words heard, Metadata, and a
// normal close. It announces speech with SpeechStarted, as vad_events
// would, to show the client ignores what it did not ask for.
type fakeDeepgram struct {
	t     *testing.T
	words []string

	// Faults.
	status      int    // refuse the handshake with this HTTP status
	retryAfter  string // … and this Retry-After
	silentFrom  int    // from this audio chunk on (CloseStream included), read but never answer
	dropAt      int    // at this audio chunk, drop the connection
	closeAt     int    // at this audio chunk, close with closeCode/closeReason
	closeCode   ws.StatusCode
	closeReason string
	badAt       int // answer this audio chunk with broken JSON

	keepAlives chan struct{} // one per KeepAlive received

	srv *httptest.Server
	wg  sync.WaitGroup

	mu      sync.Mutex
	queries []url.Values
	auths   []string
	conns   []net.Conn
}

func newFakeDeepgram(t *testing.T, script string, f *fakeDeepgram) *fakeDeepgram {
	if f == nil {
		f = &fakeDeepgram{}
	}
	f.t, f.words = t, strings.Fields(script)
	f.keepAlives = make(chan struct{}, 100)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
		f.srv.Close()
	})
	return f
}

func (f *fakeDeepgram) url() string {
	return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/v1/listen"
}

func (f *fakeDeepgram) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.queries = append(f.queries, r.URL.Query())
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	f.mu.Unlock()
	if f.status != 0 {
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		w.Header().Set("dg-error", "refused by the fake")
		http.Error(w, `{"err_code":"REFUSED","err_msg":"refused by the fake"}`, f.status)
		return
	}
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		f.t.Errorf("fake deepgram: upgrade: %v", err)
		return
	}
	f.wg.Add(1)
	defer f.wg.Done()
	defer conn.Close()
	f.mu.Lock()
	f.conns = append(f.conns, conn)
	f.mu.Unlock()

	n, samples := 0, 0
	send := func(v any) {
		p, err := json.Marshal(v)
		if err != nil {
			f.t.Error(err)
		}
		_ = wsutil.WriteServerText(conn, p)
	}
	for {
		p, op, err := wsutil.ReadClientData(conn)
		if err != nil {
			return
		}
		if op == ws.OpText {
			var m struct{ Type string }
			_ = json.Unmarshal(p, &m)
			switch m.Type {
			case "KeepAlive":
				f.keepAlives <- struct{}{}
			case "CloseStream":
				if f.silentFrom > 0 && n+1 >= f.silentFrom {
					continue // hung
				}
				heard := f.words[:min(n, len(f.words))]
				send(results(heard, samples, true))
				send(metadata(samples))
				_ = ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
				return
			default:
				f.t.Errorf("fake deepgram: unexpected text message %s", p)
				return
			}
			continue
		}
		if len(p) == 0 {
			f.t.Error("fake deepgram: empty binary message (Deepgram takes it for the end)")
		}
		n++
		samples += len(p) / 2
		switch {
		case n == f.dropAt:
			return
		case n == f.closeAt:
			_ = ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(f.closeCode, f.closeReason)))
			drain(conn) // until the client answers the close, as RFC 6455 has it
			return
		case f.silentFrom > 0 && n >= f.silentFrom:
			continue
		case n == f.badAt:
			_ = wsutil.WriteServerText(conn, []byte(`{"type":"Results","channel":`))
		default:
			if n == 1 {
				send(map[string]any{"type": "SpeechStarted", "channel": []int{0, 1}, "timestamp": 0.3})
			}
			send(results(f.words[:min(n, len(f.words))], samples, false))
		}
	}
}

// Shapes as in testdata/; TestFixtures holds them to the recorded ones.
type dgWord struct {
	Word           string  `json:"word"`
	Start          float64 `json:"start"`
	End            float64 `json:"end"`
	Confidence     float64 `json:"confidence"`
	PunctuatedWord string  `json:"punctuated_word"`
}

type dgAlternative struct {
	Transcript string   `json:"transcript"`
	Confidence float64  `json:"confidence"`
	Words      []dgWord `json:"words"`
}

type dgResults struct {
	Type         string  `json:"type"`
	ChannelIndex []int   `json:"channel_index"`
	Duration     float64 `json:"duration"`
	Start        float64 `json:"start"`
	IsFinal      bool    `json:"is_final"`
	SpeechFinal  bool    `json:"speech_final"`
	Channel      struct {
		Alternatives []dgAlternative `json:"alternatives"`
	} `json:"channel"`
	Metadata struct {
		RequestID string `json:"request_id"`
		ModelInfo struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			Arch    string `json:"arch"`
		} `json:"model_info"`
		ModelUUID string `json:"model_uuid"`
	} `json:"metadata"`
	FromFinalize bool `json:"from_finalize"`
}

// results covers the audio so far (samples) from 0 with words 0.3 s each
// from 0.3 s.
func results(words []string, samples int, final bool) dgResults {
	r := dgResults{Type: "Results", ChannelIndex: []int{0, 1}, Duration: float64(samples) / 16000, IsFinal: final, SpeechFinal: final, FromFinalize: final}
	alt := dgAlternative{Transcript: strings.Join(words, " "), Words: []dgWord{}}
	for i, w := range words {
		start := 0.3 * float64(i+1)
		alt.Words = append(alt.Words, dgWord{Word: w, Start: start, End: start + 0.3, Confidence: 0.99, PunctuatedWord: w})
	}
	if len(words) > 0 {
		alt.Confidence = 0.99
	}
	r.Channel.Alternatives = []dgAlternative{alt}
	r.Metadata.RequestID = "8c8ebea9-dbec-45fa-a035-e4632cb05b5f"
	r.Metadata.ModelInfo.Name, r.Metadata.ModelInfo.Version, r.Metadata.ModelInfo.Arch = "general-nova-3", "2024-12-20.0", "nova-3"
	r.Metadata.ModelUUID = "40bd3654-e622-47c4-a111-63a61b23bfe8"
	return r
}

func metadata(samples int) map[string]any {
	return map[string]any{
		"type": "Metadata", "transaction_key": "deprecated", "request_id": "8c8ebea9-dbec-45fa-a035-e4632cb05b5f",
		"sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "created": "2024-08-29T22:37:55.202Z",
		"duration": float64(samples) / 16000, "channels": 1,
	}
}

// drain reads until the client closes, so that closing does not reset the
// connection under the close frame.
func drain(conn net.Conn) {
	for {
		if _, _, err := wsutil.ReadClientData(conn); err != nil {
			return
		}
	}
}
