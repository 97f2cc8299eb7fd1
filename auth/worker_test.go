package auth_test

import (
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
)

func TestWorkerSecrets(t *testing.T) {
	w := auth.NewWorkerSecrets([]string{"gpu-1:s3cret-long", "plain", "Tr0ub4dor:x", ":empty-name-secret"})
	for _, tt := range []struct {
		name, cred, id, code string
	}{
		{"OK", "s3cret-long", "gpu-1", ""},
		{"OKUnnamed", "plain", "worker-2", ""},
		// A colon before a short tail is part of the secret, not a name:
		// the whole secret works and its tail alone does not.
		{"OKColonInSecret", "Tr0ub4dor:x", "worker-3", ""},
		{"ErrTailOfSecret", "x", "", pentecost.EAUTHINVALID},
		{"OKEmptyName", ":empty-name-secret", "worker-4", ""},
		{"ErrAuthRequired", "", "", pentecost.EAUTHREQUIRED},
		{"ErrAuthInvalid", "s3cret-lon", "", pentecost.EAUTHINVALID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := w.VerifyWorker(t.Context(), tt.cred)
			if pentecost.ErrorCode(err) != tt.code {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
			if err == nil && got.ID != tt.id {
				t.Fatalf("id = %s, want %s", got.ID, tt.id)
			}
		})
	}
}
