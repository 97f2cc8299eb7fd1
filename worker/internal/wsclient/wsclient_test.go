package wsclient_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pentecost/pentecost/worker/engine"
	"github.com/pentecost/pentecost/worker/internal/wsclient"
)

// TestOversizedMessage checks that a server sending more than MaxMessage,
// in one frame or in fragments, gets a bad_response instead of the
// worker's memory.
func TestOversizedMessage(t *testing.T) {
	big := bytes.Repeat([]byte("a"), wsclient.MaxMessage+10)
	for _, tc := range []struct {
		name string
		send func(w *wsutil.Writer) error
	}{
		{"OneFrame", func(w *wsutil.Writer) error { _, err := w.Write(big); return err }},
		{"Fragments", func(w *wsutil.Writer) error {
			for i := 0; i < len(big); i += 64 << 10 {
				if _, err := w.Write(big[i:min(i+64<<10, len(big))]); err != nil {
					return err
				}
				if err := w.FlushFragment(); err != nil {
					return err
				}
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				conn, _, _, err := ws.UpgradeHTTP(r, rw)
				if err != nil {
					return
				}
				defer conn.Close()
				w := wsutil.NewWriterSize(conn, ws.StateServerSide, ws.OpText, len(big)+1)
				if tc.send(w) == nil {
					_ = w.Flush()
				}
				// Hold the connection until the client gives up on it.
				_, _ = conn.Read(make([]byte, 1))
			}))
			defer srv.Close()
			c, err := wsclient.Dial(t.Context(), "ws"+strings.TrimPrefix(srv.URL, "http"), http.Header{}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Abort()
			_, _, err = c.Next()
			if err == nil {
				t.Fatal("an oversized message was accepted")
			}
			var ee *engine.Error
			if got := wsclient.ReadError("test", err); !errors.As(got, &ee) || ee.Code != engine.ErrBadResponse {
				t.Fatalf("ReadError(%v) = %v, want %s", err, got, engine.ErrBadResponse)
			}
		})
	}
}
