package vosk

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// fakeVosk speaks asr_server.py's protocol as testdata/ records it. It
// "hears" one word of its script per audio chunk: the n-th chunk is
// answered with the partial of the first n words, eof with the final of
// the words heard, 0.3 s each from 0.3 s, and then it closes.
type fakeVosk struct {
	t     *testing.T
	words []string

	// Faults.
	status     int    // refuse the handshake with this HTTP status
	retryAfter string // … and this Retry-After
	silentFrom int    // from this audio chunk on, read but never answer
	dropAt     int    // at this audio chunk, drop the connection
	closeAt    int    // at this audio chunk, close with 1011
	badAt      int    // answer this audio chunk with broken JSON

	srv *httptest.Server
	wg  sync.WaitGroup

	mu      sync.Mutex
	paths   []string
	configs []string
	conns   []net.Conn
}

func newFakeVosk(t *testing.T, script string, f *fakeVosk) *fakeVosk {
	if f == nil {
		f = &fakeVosk{}
	}
	f.t, f.words = t, strings.Fields(script)
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

func (f *fakeVosk) url() string { return "ws" + strings.TrimPrefix(f.srv.URL, "http") }

func (f *fakeVosk) serve(w http.ResponseWriter, r *http.Request) {
	if f.status != 0 {
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		http.Error(w, "refused", f.status)
		return
	}
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		f.t.Errorf("fake vosk: upgrade: %v", err)
		return
	}
	f.wg.Add(1)
	defer f.wg.Done()
	defer conn.Close()
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.Path)
	f.conns = append(f.conns, conn)
	f.mu.Unlock()

	n := 0
	for {
		p, op, err := wsutil.ReadClientData(conn)
		if err != nil {
			return
		}
		if op == ws.OpText {
			switch s := string(p); {
			case strings.Contains(s, "config"): // as asr_server.py tests it
				f.mu.Lock()
				f.configs = append(f.configs, s)
				f.mu.Unlock()
				continue
			case s == string(eofMessage):
				if f.silentFrom > 0 && n+1 >= f.silentFrom {
					continue // hung: never answers
				}
				_ = wsutil.WriteServerText(conn, []byte(voskFinal(timed(f.words[:min(n, len(f.words))]))))
				_ = ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
				return
			default:
				f.t.Errorf("fake vosk: text message %q is neither config nor exactly %s", s, eofMessage)
				return
			}
		}
		n++
		switch {
		case n == f.dropAt:
			return
		case n == f.closeAt:
			_ = ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusInternalServerError, "")))
			drain(conn) // until the client answers the close, as RFC 6455 has it
			return
		case f.silentFrom > 0 && n >= f.silentFrom:
			continue
		case n == f.badAt:
			_ = wsutil.WriteServerText(conn, []byte(`{"partial" : `))
		default:
			_ = wsutil.WriteServerText(conn, []byte(voskPartial(strings.Join(f.words[:min(n, len(f.words))], " "))))
		}
	}
}

// voskPartial and voskFinal write JSON as SimpleJSON's dump() does (see
// testdata/README.md); TestFixtures holds them to the recorded shapes.
func voskPartial(text string) string {
	return "{\n  \"partial\" : " + jsonString(text) + "\n}"
}

type fakeWord struct {
	Conf, Start, End float64
	Word             string
}

// timed gives words 0.3 s each from 0.3 s.
func timed(words []string) []fakeWord {
	ws := make([]fakeWord, len(words))
	for i, w := range words {
		start := 0.3 * float64(i+1)
		ws[i] = fakeWord{Conf: 1, Start: start, End: start + 0.3, Word: w}
	}
	return ws
}

func voskFinal(words []fakeWord) string {
	if len(words) == 0 {
		return `{"text": ""}`
	}
	var b strings.Builder
	b.WriteString("{\n  \"result\" : [")
	text := make([]string, len(words))
	for i, w := range words {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "{\n      \"conf\" : %f,\n      \"end\" : %f,\n      \"start\" : %f,\n      \"word\" : %s\n    }",
			w.Conf, w.End, w.Start, jsonString(w.Word))
		text[i] = w.Word
	}
	b.WriteString("],\n  \"text\" : " + jsonString(strings.Join(text, " ")) + "\n}")
	return b.String()
}

func jsonString(s string) string {
	var b strings.Builder
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
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
