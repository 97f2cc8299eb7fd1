package cluster_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/pentecost/pentecost/opuspcm"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/redistest"
)

// rawConn is a WebSocket connection read message by message, for the
// protocol's Opus parts the Go client need not know.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	rw io.ReadWriter // reads what the handshake's reader already holds first
}

func rawDial(t *testing.T, n *node, query string) *rawConn {
	t.Helper()
	c, br, _, err := ws.Dial(ctx(t, 5*time.Second), strings.Replace(n.url, "http", "ws", 1)+"/ws?"+query)
	if err != nil {
		t.Fatalf("dial %s: %v", query, err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawConn{t: t, c: c, rw: c}
	// The server's first message can come in the same read as its 101
	// answer; it is then in br, not yet on c.
	if br != nil {
		r.rw = struct {
			io.Reader
			io.Writer
		}{br, c}
	}
	return r
}

// next returns the next data message within 10 s.
func (r *rawConn) next() ([]byte, ws.OpCode) {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, op, err := wsutil.ReadServerData(r.rw)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return p, op
}

// expect returns the next JSON message of type typ, skipping others.
func (r *rawConn) expect(typ string) map[string]any {
	r.t.Helper()
	for {
		p, op := r.next()
		if op != ws.OpText {
			continue
		}
		var m map[string]any
		if json.Unmarshal(p, &m) == nil && m["type"] == typ {
			return m
		}
	}
}

// frame returns the next binary audio frame.
func (r *rawConn) frame() realtime.BinaryFrame {
	r.t.Helper()
	for {
		p, op := r.next()
		if op != ws.OpBinary {
			continue
		}
		f, err := realtime.DecodeBinaryFrame(p)
		if err != nil {
			r.t.Fatal(err)
		}
		return f
	}
}

func (r *rawConn) send(op ws.OpCode, p []byte) {
	r.t.Helper()
	if err := wsutil.WriteClientMessage(r.rw, op, p); err != nil {
		r.t.Fatal(err)
	}
}

// TestCluster_Opus: an Opus speaker on node A; on node B a listener who
// takes Opus gets its packets byte for byte and one of the original
// system's clients the same speech as PCM, decoded once on A; a worker on
// A learns, through Redis, how many of B's Spanish listeners take PCM.
func TestCluster_Opus(t *testing.T) {
	srv := redistest.Start(t)
	token := mintToken(t, srv.URL(), "speaker")
	a := startNode(t, "A", srv.URL(), "WORKER_CREDENTIALS="+workerCredential)
	b := startNode(t, "B", srv.URL())
	var created struct {
		SessionID string `json:"sessionId"`
	}
	if status, code := do(t, "POST", a.url+"/sessions", token, map[string]string{"sourceLanguage": "en"}, &created); status != http.StatusCreated {
		t.Fatalf("POST /sessions = %d %s", status, code)
	}
	id := created.SessionID

	opus := rawDial(t, b, "sessionId="+id+"&targetLanguage=en&audioFormat=binary&codec=opus")
	opus.expect("sessionJoined")
	legacy := rawDial(t, b, "sessionId="+id+"&targetLanguage=en")
	legacy.expect("sessionJoined")
	for _, q := range []string{"&codec=opus", "&codec=opus", ""} {
		rawDial(t, b, "sessionId="+id+"&targetLanguage=es"+q).expect("sessionJoined")
	}
	w := rawDial(t, a, "role=worker&token="+workerCredential)
	waitForDemand(t, w, id)

	sp := rawDial(t, a, "sessionId="+id+"&token="+token+"&codec=opus")
	sp.expect("speakerConnected")
	packets := clusterOpusPackets(t)
	for _, p := range packets {
		sp.send(ws.OpBinary, p)
	}
	for i, p := range packets {
		if f := opus.frame(); f.Codec != "opus" || !bytes.Equal(f.Audio, p) {
			t.Fatalf("Opus frame %d on B: codec %q, %d bytes", i, f.Codec, len(f.Audio))
		}
	}
	d, err := opuspcm.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var want [][]byte
	for _, p := range packets {
		chunks, err := d.Decode(p)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, chunks...)
	}
	for i, w := range want {
		m := legacy.expect("audioData")
		got, _ := base64.StdEncoding.DecodeString(m["audioData"].(string))
		if _, ok := m["codec"]; ok || !bytes.Equal(got, w) {
			t.Fatalf("PCM chunk %d on B: codec %v, %d bytes", i, m["codec"], len(got))
		}
	}
}

// waitForDemand reads the worker's demand until the session shows its
// three Spanish listeners, one of them on PCM.
func waitForDemand(t *testing.T, w *rawConn, id string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		p, op := w.next()
		if op != ws.OpText {
			continue
		}
		var m struct {
			Sessions []struct {
				SessionID       string         `json:"sessionId"`
				TargetLanguages map[string]int `json:"targetLanguages"`
				PCMLanguages    map[string]int `json:"pcmLanguages"`
			} `json:"sessions"`
		}
		if json.Unmarshal(p, &m) != nil {
			continue
		}
		for _, s := range m.Sessions {
			if s.SessionID == id && s.TargetLanguages["es"] == 3 && s.PCMLanguages["es"] == 1 {
				return
			}
		}
	}
	t.Fatal("the worker never saw 3 Spanish listeners, 1 on PCM")
}

// clusterOpusPackets joins Chromium's 20 ms packets (web/testdata/opus)
// into 100 ms ones.
func clusterOpusPackets(t *testing.T) [][]byte {
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
