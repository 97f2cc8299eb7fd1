package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/opus"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
)

// toneHz is the frequency of the sine the speaker page's fake microphone
// plays in TestBrowserOpusSession; toneAmplitude its peak (0..1).
const (
	toneHz        = 440
	toneAmplitude = 0.4
)

// opusSessionResult is what web/e2e/opus-session.mjs measured in the
// pages: per listener page, its WebSocket payload per second.
type opusSessionResult struct {
	Bandwidth []struct {
		Name        string  `json:"name"`
		Codec       string  `json:"codec"`
		Decoder     string  `json:"decoder"`
		Kbps        float64 `json:"kbps"`        // payload per second of wall time
		KbpsAudio   float64 `json:"kbpsAudio"`   // payload per second of audio received
		Seconds     float64 `json:"seconds"`     // the wall time measured
		DelaySecond float64 `json:"delaySecond"` // the delay the page showed at the end
	} `json:"bandwidth"`
}

// TestBrowserOpusSession runs a session whose speaker page encodes Opus
// (web/e2e/opus-session.mjs): the page's fake microphone plays a 440 Hz
// sine; listener pages decode it with WebCodecs (on 127.0.0.1) and with the
// vendored WebAssembly decoder (at http://venue.test:PORT, not a secure
// context, on a 360 px screen), conceal packets the test drops, and a
// third page asks for PCM; their output analysers must hear the tone at
// its frequency and level; then a speaker page without WebCodecs' encoder
// takes over and sends PCM, which they play too. Beside them, clients
// written here join as the original system's clients do (no codec, JSON
// audioData), with binary PCM, and with codec=opus: the first two must get
// PCM that carries the tone throughout, the last the first speaker's
// 100 ms Opus packets, which pion/opus decodes to the tone, then the
// second speaker's PCM. The test logs what each costs per listener while
// the speaker sends Opus.
func TestBrowserOpusSession(t *testing.T) {
	requireBrowser(t)
	srv := startServer(t, nil, func(rt *realtime.Server) {
		rt.ConnectionLimit = pentecost.Limit{Events: 200, Per: time.Minute}
	})
	token := apiLogin(t, srv)
	id := apiCreateSession(t, srv, token)

	// The wire clients join before the speaker page takes the session
	// over, and read until the session ends (or the test gives up).
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout+time.Minute)
	defer cancel()
	clients := []*wireListener{
		{name: "legacy (JSON, no codec)"},
		{name: "binary PCM", query: "&audioFormat=binary"},
		{name: "binary Opus", query: "&audioFormat=binary&codec=opus"},
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		c.dial(ctx, t, srv.URL, id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.read(ctx)
		}()
	}

	result := filepath.Join(t.TempDir(), "opus-session.json")
	runBrowserScript(t, "opus-session.mjs",
		"PENTECOST_URL="+srv.URL,
		"PENTECOST_USERNAME="+srv.Username,
		"PENTECOST_PASSWORD="+srv.Password,
		"PENTECOST_SESSION="+id,
		"PENTECOST_TONE_HZ="+strconv.Itoa(toneHz),
		"PENTECOST_TONE_AMPLITUDE="+strconv.FormatFloat(toneAmplitude, 'f', -1, 64),
		"PENTECOST_E2E_RESULT="+result,
	)
	// The script ended the session: every client is told and stops.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Error("a wire client was not told that the session ended")
	}

	// The Opus listener's first PCM frame marks when the speaker page
	// without an encoder took over.
	opusClient := clients[2]
	takeover := time.Now()
	for i, k := range opusClient.kind {
		if k == 1 {
			takeover = opusClient.at[i]
			if slices.Contains(opusClient.kind[i:], 2) {
				t.Errorf("%s: Opus frames after the PCM speaker took over", opusClient.name)
			}
			break
		}
	}

	wantRMS := toneAmplitude * 32767 / math.Sqrt2
	for _, c := range clients {
		if c.err != nil {
			t.Errorf("%s: %v", c.name, c.err)
			continue
		}
		pcm := c.pcm
		switch c.name {
		case "binary Opus":
			if c.kinds[1] < 30 || c.kinds[2] < 30 {
				t.Errorf("%s: %d PCM frames and %d Opus frames, want at least 30 of each (Opus, then the PCM speaker's)", c.name, c.kinds[1], c.kinds[2])
			}
			if share, rms := toneIn(pcm, toneHz); share < 0.8 || rms < wantRMS/2 || rms > wantRMS*1.5 {
				t.Errorf("%s: the PCM speaker's frames do not carry the tone: share %.2f, RMS %.0f", c.name, share, rms)
			}
			// The speaker page's packets as it made them: 100 ms, five
			// SILK wideband frames in one code-3 packet.
			for i, p := range c.opus {
				toc := opusTOC(p[0])
				if toc.config() != 9 || toc.code() != 3 || len(p) < 2 || p[1]&0x3f != 5 {
					t.Fatalf("%s: packet %d (%d bytes) starts %x, want configuration 9 (SILK WB 20 ms), code 3, five frames", c.name, i, len(p), p[:min(2, len(p))])
				}
			}
			pcm = decodeOpusPackets(t, c.opus)
		default:
			if c.kinds[2] != 0 || c.codecs > 0 {
				t.Errorf("%s: %d Opus frames, %d audioData with a codec, want PCM only", c.name, c.kinds[2], c.codecs)
			}
			if c.audio < 30 {
				t.Errorf("%s: %d audio messages, want at least 30", c.name, c.audio)
			}
		}
		share, rms := toneIn(pcm, toneHz)
		t.Logf("%s: %d audio messages, %.1f s of audio; at %d Hz: median %.2f of each 100 ms window's power, median RMS %.0f (the input's %.0f, %+.1f dB)",
			c.name, c.audio, float64(len(pcm))/16000, toneHz, share, rms, wantRMS, 20*math.Log10(rms/wantRMS))
		if share < 0.8 || rms < wantRMS/2 || rms > wantRMS*1.5 {
			t.Errorf("%s: the audio does not carry the tone: median share %.2f at %d Hz (want > 0.8), RMS %.0f (want %.0f within -6..+3.5 dB)", c.name, share, toneHz, rms, wantRMS)
		}
	}

	// What each costs per listener while the speaker sends Opus: the
	// pages' figures, then the wire clients'.
	var table strings.Builder
	fmt.Fprintf(&table, "%-32s %12s %16s\n", "listener", "kbit/s", "kbit/s of audio")
	if b, err := os.ReadFile(result); err != nil {
		t.Errorf("the script wrote no result: %v", err)
	} else {
		var r opusSessionResult
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		for _, l := range r.Bandwidth {
			name := "page " + l.Name + ", " + l.Codec
			if l.Decoder != "" {
				name += " (" + l.Decoder + ")"
			}
			fmt.Fprintf(&table, "%-32s %12.1f %16.1f   (%.0f s; delay shown %.1f s)\n", name, l.Kbps, l.KbpsAudio, l.Seconds, l.DelaySecond)
		}
	}
	for _, c := range clients {
		kbps, audio, secs := c.bandwidth(takeover)
		fmt.Fprintf(&table, "%-32s %12.1f %16.1f   (%.0f s)\n", c.name, kbps, audio, secs)
	}
	t.Logf("WebSocket payload per listener, one session with an Opus speaker page:\n%s", table.String())
}

// wireListener is a listener written here, joined with query added to
// the join URL, recording what arrives.
type wireListener struct {
	name  string
	query string
	conn  *websocket.Conn

	err    error
	kinds  map[byte]int // binary frames by kind
	codecs int          // JSON audioData that name a codec
	audio  int          // audio messages
	pcm    []int16
	opus   [][]byte
	// Per audio message: when it came, its kind (0 for JSON), payload
	// bytes, the audio it carries (seconds).
	at    []time.Time
	kind  []byte
	size  []int
	secs  []float64
	total int // payload bytes of every message
}

func (c *wireListener) dial(ctx context.Context, t *testing.T, base, sessionID string) {
	t.Helper()
	u := strings.Replace(base, "http://", "ws://", 1) + "/ws?sessionId=" + sessionID + "&targetLanguage=en" + c.query
	conn, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	conn.SetReadLimit(1 << 20)
	c.conn = conn
	c.kinds = map[byte]int{}
	t.Cleanup(func() { _ = conn.CloseNow() })
}

// read records messages until the session ends, the connection fails or
// ctx is done.
func (c *wireListener) read(ctx context.Context) {
	for {
		typ, b, err := c.conn.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.err = fmt.Errorf("reading: %w", err)
			}
			return
		}
		c.total += len(b)
		now := time.Now()
		if typ == websocket.MessageBinary {
			if len(b) < 20 || b[0] != 1 {
				c.err = fmt.Errorf("a binary message of %d bytes that is no frame", len(b))
				return
			}
			c.kinds[b[1]]++
			payload := b[20:]
			switch b[1] {
			case 1:
				c.addPCM(payload)
				c.note(now, 1, len(b), float64(len(payload)/2)/16000)
			case 2:
				c.opus = append(c.opus, bytes.Clone(payload))
				c.audio++
				c.note(now, 2, len(b), float64(opusTOC(payload[0]).frameMicros()*max(1, opusFrames(payload)))/1e6)
			}
			continue
		}
		var m struct {
			Type      string  `json:"type"`
			AudioData *string `json:"audioData"`
			Codec     *string `json:"codec"`
			Code      string  `json:"code"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			c.err = fmt.Errorf("a text message that is no JSON: %q", b)
			return
		}
		switch m.Type {
		case "audioData":
			if m.Codec != nil {
				c.codecs++
			}
			raw, err := base64.StdEncoding.DecodeString(*m.AudioData)
			if err != nil {
				c.err = fmt.Errorf("audioData: %w", err)
				return
			}
			c.addPCM(raw)
			c.note(now, 0, len(b), float64(len(raw)/2)/16000)
		case "error":
			c.err = fmt.Errorf("the server sent error %s", m.Code)
			return
		case "sessionEnded":
			return
		}
	}
}

func (c *wireListener) addPCM(b []byte) {
	c.audio++
	for i := 0; i+1 < len(b); i += 2 {
		c.pcm = append(c.pcm, int16(binary.LittleEndian.Uint16(b[i:])))
	}
}

func (c *wireListener) note(at time.Time, kind byte, size int, secs float64) {
	c.at = append(c.at, at)
	c.kind = append(c.kind, kind)
	c.size = append(c.size, size)
	c.secs = append(c.secs, secs)
}

// bandwidth returns the payload of the audio messages that came before
// until in kbit/s, per second of wall time from the first to the last of
// them and per second of audio they carry, and that wall time. Only audio
// counts: the rest (status messages) is the same for every codec and a
// few bytes a second.
func (c *wireListener) bandwidth(until time.Time) (kbps, kbpsAudio, secs float64) {
	n := 0
	for n < len(c.at) && c.at[n].Before(until) {
		n++
	}
	if n < 2 {
		return 0, 0, 0
	}
	var bytes int
	var audio float64
	for i := 1; i < n; i++ { // the first message opens the interval
		bytes += c.size[i]
		audio += c.secs[i]
	}
	secs = c.at[n-1].Sub(c.at[0]).Seconds()
	return float64(bytes) * 8 / 1000 / secs, float64(bytes) * 8 / 1000 / audio, secs
}

// opusFrames returns how many frames an Opus packet holds (RFC 6716 3.2).
func opusFrames(p []byte) int {
	switch p[0] & 3 {
	case 0:
		return 1
	case 1, 2:
		return 2
	}
	if len(p) < 2 {
		return 0
	}
	return int(p[1] & 0x3f)
}

// decodeOpusPackets decodes packets of any length with pion/opus at 16 kHz.
func decodeOpusPackets(t *testing.T, packets [][]byte) []int16 {
	t.Helper()
	d, err := opus.NewDecoderWithOutput(16000, 1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]float32, 5760)
	var out []int16
	for i, p := range packets {
		n, err := d.DecodeToFloat32(p, buf)
		if err != nil {
			t.Fatalf("pion/opus: packet %d (TOC %#02x): %v", i, p[0], err)
		}
		for _, v := range buf[:n] {
			out = append(out, int16(max(-32768, min(32767, math.Round(float64(v)*32768)))))
		}
	}
	return out
}

// toneIn returns, over 100 ms windows of 16 kHz pcm (the first second
// left out: the encoder and the capture settle), the median share of each
// window's power that lies at hz (Goertzel), and the median RMS.
func toneIn(pcm []int16, hz float64) (share, rms float64) {
	const n = 1600
	var shares, levels []float64
	for start := 16000; start+n <= len(pcm); start += n {
		w := pcm[start : start+n]
		coeff := 2 * math.Cos(2*math.Pi*hz/16000)
		var s1, s2, energy float64
		for _, v := range w {
			x := float64(v)
			s := x + coeff*s1 - s2
			s2, s1 = s1, s
			energy += x * x
		}
		mag2 := s1*s1 + s2*s2 - coeff*s1*s2
		meanSquare := energy / n
		// A sine of amplitude A gives |X|² = (A·n/2)², of power A²/2.
		tonePower := 2 * mag2 / (n * n)
		if meanSquare > 0 {
			shares = append(shares, tonePower/meanSquare)
		} else {
			shares = append(shares, 0)
		}
		levels = append(levels, math.Sqrt(meanSquare))
	}
	if len(shares) == 0 {
		return 0, 0
	}
	slices.Sort(shares)
	slices.Sort(levels)
	return shares[len(shares)/2], levels[len(levels)/2]
}

// apiLogin signs the test server's account in and returns its token.
func apiLogin(t *testing.T, srv *testServer) string {
	t.Helper()
	var r struct {
		Token string `json:"token"`
	}
	apiCall(t, srv.URL+"/auth/login", "", map[string]string{"username": srv.Username, "password": srv.Password}, &r)
	return r.Token
}

// apiCreateSession creates an English session and returns its ID.
func apiCreateSession(t *testing.T, srv *testServer, token string) string {
	t.Helper()
	var r struct {
		SessionID string `json:"sessionId"`
	}
	apiCall(t, srv.URL+"/sessions", token, map[string]string{"sourceLanguage": "en", "qualityTier": "standard"}, &r)
	return r.SessionID
}

func apiCall(t *testing.T, url, token string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}
