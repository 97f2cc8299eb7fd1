package auth_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
)

func TestLoadOrCreateKey(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys", "nested", "signing.pem")
		key, err := auth.LoadOrCreateKey(path)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Fatalf("key file mode = %o, want 600", perm)
		}
		di, err := os.Stat(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		if perm := di.Mode().Perm(); perm != 0o700 {
			t.Fatalf("key directory mode = %o, want 700", perm)
		}
		again, err := auth.LoadOrCreateKey(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(key, again) {
			t.Fatal("second load returned a different key")
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		// Processes starting together on one data dir agree on one key,
		// and none reads the file while another is still writing it.
		dir := t.TempDir()
		path := filepath.Join(dir, "signing.pem")
		keys := make([][]byte, 16)
		errs := make([]error, len(keys))
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() {
				var k ed25519.PrivateKey
				k, errs[i] = auth.LoadOrCreateKey(path)
				keys[i] = k
			})
		}
		wg.Wait()
		for i := range keys {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatal("two callers got different keys")
			}
		}
		if files, _ := os.ReadDir(dir); len(files) != 1 {
			t.Fatalf("%d files left in the key directory, want the key alone", len(files))
		}
	})

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"ErrNotPEM", []byte("not a key")},
		{"ErrWrongBlockType", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})},
		{"ErrBadDER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})},
		{"ErrNotEd25519", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "signing.pem")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := auth.LoadOrCreateKey(path); err == nil {
				t.Fatal("want an error")
			}
			// The bad file is left for a person to look at, not replaced.
			if got, _ := os.ReadFile(path); !bytes.Equal(got, tc.data) {
				t.Fatal("key file was changed")
			}
		})
	}
}

func TestEmbedded(t *testing.T) {
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	now := start
	e := auth.NewEmbedded(newEd25519Key(t))
	e.Now = func() time.Time { return now }
	ada := &pentecost.User{ID: "ada", Name: "Ada"}

	issue := func(t *testing.T, e *auth.Embedded, ttl time.Duration) string {
		t.Helper()
		tok, err := e.IssueToken(t.Context(), ada, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	t.Run("OK", func(t *testing.T) {
		now = start
		tok := issue(t, e, time.Hour)
		for _, tv := range []pentecost.TokenVerifier{e, auth.NewVerifier(e)} {
			u, err := tv.VerifyToken(t.Context(), tok)
			if err != nil {
				t.Fatalf("%v (%s)", err, auth.Reason(err))
			}
			want := pentecost.User{ID: "ada", Name: "Ada", Issuer: pentecost.EmbeddedIssuer}
			if *u != want {
				t.Fatalf("user = %+v, want %+v", *u, want)
			}
		}
	})

	t.Run("OKDistinctTokenIDs", func(t *testing.T) {
		now = start
		if a, b := issue(t, e, time.Hour), issue(t, e, time.Hour); a == b {
			t.Fatal("two tokens issued at the same second are identical")
		}
	})

	t.Run("OKKeyIDStable", func(t *testing.T) {
		other := auth.NewEmbedded(e.Key)
		if e.KeyID() != other.KeyID() || len(e.KeyID()) != 16 {
			t.Fatalf("key ids %q, %q", e.KeyID(), other.KeyID())
		}
		if auth.NewEmbedded(newEd25519Key(t)).KeyID() == e.KeyID() {
			t.Fatal("two keys share a key id")
		}
	})

	t.Run("ErrExpired", func(t *testing.T) {
		now = start
		tok := issue(t, e, time.Minute)
		now = start.Add(time.Minute + e.Leeway + time.Second)
		_, err := e.VerifyToken(t.Context(), tok)
		wantCode(t, err, pentecost.EAUTHINVALID)
	})

	t.Run("OKWithinLeeway", func(t *testing.T) {
		now = start
		tok := issue(t, e, time.Minute)
		now = start.Add(time.Minute + e.Leeway - time.Second)
		if _, err := e.VerifyToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrNotYetValid", func(t *testing.T) {
		now = start.Add(time.Hour)
		tok := issue(t, e, 2*time.Hour)
		now = start
		_, err := e.VerifyToken(t.Context(), tok)
		wantCode(t, err, pentecost.EAUTHINVALID)
	})

	t.Run("ErrWrongAudience", func(t *testing.T) {
		now = start
		other := auth.NewEmbedded(e.Key)
		other.Now, other.Audience = e.Now, "someone-else"
		_, err := e.VerifyToken(t.Context(), issue(t, other, time.Hour))
		wantCode(t, err, pentecost.EAUTHINVALID)
	})

	t.Run("ErrWrongIssuer", func(t *testing.T) {
		now = start
		other := auth.NewEmbedded(e.Key)
		other.Now, other.Issuer = e.Now, "someone-else"
		_, err := e.VerifyToken(t.Context(), issue(t, other, time.Hour))
		wantCode(t, err, pentecost.EAUTHINVALID)
	})

	t.Run("ErrIssueValidation", func(t *testing.T) {
		for name, tc := range map[string]struct {
			u   *pentecost.User
			ttl time.Duration
		}{
			"NilUser":     {nil, time.Hour},
			"NoID":        {&pentecost.User{Name: "x"}, time.Hour},
			"ZeroTTL":     {ada, 0},
			"NegativeTTL": {ada, -time.Second},
		} {
			t.Run(name, func(t *testing.T) {
				_, err := e.IssueToken(t.Context(), tc.u, tc.ttl)
				wantCode(t, err, pentecost.EVALIDATIONFIELD)
			})
		}
	})
}
