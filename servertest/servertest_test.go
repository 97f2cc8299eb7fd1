package servertest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/servertest"
)

func TestStart(t *testing.T) {
	configured := false
	srv := servertest.Start(t, servertest.Configure(func(*realtime.Server) { configured = true }))
	if !configured {
		t.Fatal("Configure hook did not run")
	}
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") || srv.WSURL != "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws" {
		t.Fatalf("URL = %q, WSURL = %q", srv.URL, srv.WSURL)
	}

	t.Run("CreateSession", func(t *testing.T) {
		sess := srv.CreateSession("alice", "de")
		resp, err := http.Get(srv.URL + "/sessions/" + sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct {
			ID             string `json:"sessionId"`
			SourceLanguage string `json:"sourceLanguage"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || got.ID != sess.ID || got.SourceLanguage != "de" {
			t.Fatalf("GET session: status %d, %+v", resp.StatusCode, got)
		}
	})

	t.Run("Token", func(t *testing.T) {
		u, err := srv.Issuer.VerifyToken(context.Background(), srv.Token("bob"))
		if err != nil {
			t.Fatal(err)
		}
		if u.ID != "bob" {
			t.Fatalf("token user = %q", u.ID)
		}
	})

	t.Run("CutAll", func(t *testing.T) {
		sess := srv.CreateSession("carol", "en")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, srv.WSURL+"?sessionId="+sess.ID+"&targetLanguage=en", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if n := len(srv.Conns()); n != 1 {
			t.Fatalf("recorded %d connections, want 1", n)
		}
		if n := srv.CutAll(); n != 1 {
			t.Fatalf("cut %d connections, want 1", n)
		}
		if len(srv.Conns()) != 0 {
			t.Fatal("connections still recorded after CutAll")
		}
		// A cut connection ends reads with an error rather than a close frame.
		for {
			if _, _, err := c.Read(ctx); err != nil {
				if websocket.CloseStatus(err) != -1 {
					t.Fatalf("read ended with a close frame: %v", err)
				}
				break
			}
		}
	})
}
