package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"github.com/pentecost/pentecost"
)

// WorkerSecrets verifies translation workers against configured secrets.
// Only SHA-256 hashes of the secrets are kept, and every comparison takes
// the same time whichever secret (if any) matches.
type WorkerSecrets struct {
	workers []workerSecret
}

type workerSecret struct {
	id   string
	hash [sha256.Size]byte
}

// NewWorkerSecrets returns a verifier for secrets given as "name:secret"
// or just "secret" (then named "worker-N", N counting from 1). A colon
// names the worker only when what precedes it is a plain name (letters,
// digits, "-", "_"; at most 32) and what follows is at least
// minNamedSecret bytes: otherwise the whole string is the secret, so that
// a secret with a colon in it is never cut down to its tail.
func NewWorkerSecrets(secrets []string) *WorkerSecrets {
	w := &WorkerSecrets{}
	for i, s := range secrets {
		id, secret, ok := strings.Cut(s, ":")
		if !ok || !plainName(id) || len(secret) < minNamedSecret {
			id, secret = "worker-"+itoa(i+1), s
		}
		if secret == "" {
			continue
		}
		w.workers = append(w.workers, workerSecret{id: id, hash: sha256.Sum256([]byte(secret))})
	}
	return w
}

// minNamedSecret is the shortest secret of the "name:secret" form.
const minNamedSecret = 8

func plainName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// VerifyWorker implements pentecost.WorkerVerifier.
func (w *WorkerSecrets) VerifyWorker(ctx context.Context, credential string) (*pentecost.Worker, error) {
	if credential == "" {
		return nil, pentecost.Errorf(pentecost.EAUTHREQUIRED, "A worker credential is required.")
	}
	sum := sha256.Sum256([]byte(credential))
	var found string
	matched := false
	for _, ws := range w.workers {
		if subtle.ConstantTimeCompare(sum[:], ws.hash[:]) == 1 && !matched {
			found, matched = ws.id, true
		}
	}
	if !matched {
		return nil, pentecost.Errorf(pentecost.EAUTHINVALID, "Invalid credential.")
	}
	return &pentecost.Worker{ID: found}, nil
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

var _ pentecost.WorkerVerifier = (*WorkerSecrets)(nil)
