package cluster_test

import (
	"context"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pentecost/pentecost/redistest"
)

// Token checks of the test nodes: every second (accountCheckEnv), so that
// the bound is short.
const (
	accountCheck    = time.Second
	accountCheckEnv = "SPEAKER_ACCOUNT_CHECK_SECONDS=1"
	// accountBound is how long a removed speaker may stay connected: a
	// check interval, and slack for a loaded machine; less than the
	// default interval, so that it fails too if the setting is not used.
	accountBound = accountCheck + 3*time.Second
	// closeTokenInvalid is the close code of a refused token (realtime.CloseTokenInvalid).
	closeTokenInvalid = 4004
)

// accountSpeaker is alice's speaker connection, read until it ends.
type accountSpeaker struct {
	conn *websocket.Conn
	done chan struct{}
	err  error // what ended it, set before done is closed
}

func accountSpeak(t *testing.T, n *node, token, id string) *accountSpeaker {
	t.Helper()
	url := "ws" + strings.TrimPrefix(n.url, "http") + "/ws?sessionId=" + id
	conn, _, err := websocket.Dial(ctx(t, 10*time.Second), url, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		t.Fatalf("speaker on %s: %v", n.name, err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	s := &accountSpeaker{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			if _, _, err := conn.Read(context.Background()); err != nil {
				s.err = err
				return
			}
		}
	}()
	return s
}

// TestAccount_RemovedSpeakerAcrossNodes: an account removed with `pentecost
// users remove` against the shared Redis ends its live broadcast on
// another node within seconds, while the broadcast of another account on
// that node carries on.
func TestAccount_RemovedSpeakerAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	alice := mintToken(t, srv.URL(), "alice")
	bob := mintToken(t, srv.URL(), "bob")
	a := startNode(t, "A", srv.URL(), accountCheckEnv)
	b := startNode(t, "B", srv.URL(), accountCheckEnv)

	var created struct {
		ID string `json:"sessionId"`
	}
	if status, code := do(t, "POST", a.url+"/sessions", alice, map[string]string{"sourceLanguage": "en"}, &created); status != http.StatusCreated {
		t.Fatalf("POST /sessions = %d %s", status, code)
	}
	sp := accountSpeak(t, a, alice, created.ID)
	_, heard := listen(t, b.url, created.ID)
	chunk := make([]byte, 640)
	next := uint32(0)
	waitFor(t, 10*time.Second, "the listener on B hearing alice", func() bool {
		binary.BigEndian.PutUint32(chunk, next)
		next++
		if err := sp.conn.Write(ctx(t, 5*time.Second), websocket.MessageBinary, chunk); err != nil {
			t.Fatalf("send: %v", err)
		}
		return heard.count() > 0
	})
	other := speak(t, a.url, bob)
	_, heardBob := listen(t, b.url, other.Session())

	cli(t, "", "users", "remove", "--redis", srv.URL(), "alice")
	removed := time.Now()
	select {
	case <-sp.done:
	case <-time.After(accountBound):
		t.Fatalf("alice still connected to A %v after her removal", accountBound)
	}
	if code := websocket.CloseStatus(sp.err); code != closeTokenInvalid {
		t.Fatalf("alice's connection ended with %v (code %d), want %d", sp.err, code, closeTokenInvalid)
	}
	t.Logf("closed %v after the removal", time.Since(removed).Round(time.Millisecond))

	for _, n := range []*node{a, b} {
		if status, _ := do(t, "GET", n.url+"/sessions", alice, nil, nil); status != http.StatusUnauthorized {
			t.Errorf("GET /sessions on %s with the removed account's token = %d, want 401", n.name, status)
		}
	}
	select {
	case <-other.Done():
		t.Fatalf("bob's broadcast on A ended too: %v", other.Err())
	default:
	}
	send(t, other, 0, 1)
	waitFor(t, 10*time.Second, "bob's listener on B hearing him", func() bool { return heardBob.count() == 1 })
}
