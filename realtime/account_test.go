package realtime_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
)

// accountVerifier verifies joins with the server's own verifier until told
// to answer every verification with an error, as a store would once the
// account is gone (EAUTHINVALID) or while it is unreachable (EUNAVAILABLE).
type accountVerifier struct {
	next pentecost.TokenVerifier

	mu    sync.Mutex
	err   error
	calls int // verifications answered with err
}

func (v *accountVerifier) VerifyToken(ctx context.Context, token string) (*pentecost.User, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err != nil {
		v.calls++
		return nil, v.err
	}
	return v.next.VerifyToken(ctx, token)
}

func (v *accountVerifier) answer(err error) {
	v.mu.Lock()
	v.err, v.calls = err, 0
	v.mu.Unlock()
}

func (v *accountVerifier) answered() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.calls
}

// accountLog counts the warnings a server logs with a given message.
type accountLog struct {
	mu       sync.Mutex
	messages []string
}

func (h *accountLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *accountLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *accountLog) WithGroup(string) slog.Handler            { return h }
func (h *accountLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.messages = append(h.messages, r.Level.String()+" "+r.Message)
	h.mu.Unlock()
	return nil
}

func (h *accountLog) count(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.messages {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// newAccountEnv starts a server checking speakers' tokens every 20 ms
// through v, logging to log.
func newAccountEnv(t *testing.T, v *accountVerifier, log *accountLog) *env {
	return newEnv(t, func(s *realtime.Server) {
		v.next, s.Verifier = s.Verifier, v
		s.AccountCheckInterval = 20 * time.Millisecond
		s.Logger = slog.New(log)
	})
}

// TestAccountCheck: a live speaker whose token is refused now is closed
// with 4004; one whose token cannot be checked stays, with one warning.
func TestAccountCheck(t *testing.T) {
	t.Run("TokenRefused", func(t *testing.T) {
		v, log := &accountVerifier{}, &accountLog{}
		e := newAccountEnv(t, v, log)
		sess := e.createSession("alice")
		l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
		l.expect("sessionJoined")
		sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
		sp.expect("speakerConnected")

		v.answer(pentecost.Errorf(pentecost.EAUTHINVALID, "Invalid or expired token."))
		if m := sp.expect("error"); m.m["code"] != pentecost.EAUTHINVALID {
			t.Fatalf("error before the close = %v", m.m)
		}
		if code := sp.expectClose(); code != realtime.CloseTokenInvalid {
			t.Fatalf("close = %d, want %d", code, realtime.CloseTokenInvalid)
		}
		l.expect("speakerDisconnected") // the grace period starts, as for any drop
		if n := v.answered(); n != 1 {
			t.Fatalf("token verified %d times after it was refused, want 1", n)
		}
	})

	t.Run("Unavailable", func(t *testing.T) {
		v, log := &accountVerifier{}, &accountLog{}
		e := newAccountEnv(t, v, log)
		sess := e.createSession("alice")
		l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
		l.expect("sessionJoined")
		sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
		sp.expect("speakerConnected")

		v.answer(pentecost.Errorf(pentecost.EUNAVAILABLE, "Store unavailable."))
		poll(t, "three checks failing", func() bool { return v.answered() >= 3 })
		sp.sendBinary(audio(1, 640))
		if m := l.expect("audioData"); m.m["sequenceNumber"] == nil {
			t.Fatalf("audio = %v", m.m)
		}
		const warning = "WARN cannot check speakers' tokens"
		if n := log.count(warning); n != 1 {
			t.Fatalf("%d warnings after three failed rounds, want 1", n)
		}

		v.answer(nil)
		poll(t, "checks succeeding again", func() bool { return log.count("INFO speakers' tokens can be checked again") == 1 })
		v.answer(pentecost.Errorf(pentecost.EAUTHINVALID, "Invalid or expired token."))
		if code := sp.expectClose(); code != realtime.CloseTokenInvalid {
			t.Fatalf("close once the store answers = %d, want %d", code, realtime.CloseTokenInvalid)
		}
	})
}
