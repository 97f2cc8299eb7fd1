package auth_test

import (
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
)

// FuzzVerifier feeds arbitrary bearer tokens to a Verifier: it must never
// panic, never accept one, and only answer with the documented codes.
func FuzzVerifier(f *testing.F) {
	e := auth.NewEmbedded(newEd25519Key(f))
	good, err := e.IssueToken(f.Context(), &pentecost.User{ID: "ada", Name: "ada"}, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{"", "garbage", "a.b.c", "..", good, good[:len(good)-2], good + "x"} {
		f.Add(seed)
	}
	other := auth.NewEmbedded(newEd25519Key(f)) // the fuzzer cannot hold this key
	v := auth.NewVerifier(other)
	f.Fuzz(func(t *testing.T, token string) {
		u, err := v.VerifyToken(t.Context(), token)
		if err == nil || u != nil {
			t.Fatalf("token accepted: %q", token)
		}
		switch code := pentecost.ErrorCode(err); code {
		case pentecost.EAUTHREQUIRED, pentecost.EAUTHINVALID:
		default:
			t.Fatalf("code %q for %q", code, token)
		}
	})
}
