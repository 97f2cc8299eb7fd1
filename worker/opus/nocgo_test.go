//go:build !cgo

package opus_test

import (
	"errors"
	"testing"

	"github.com/pentecost/pentecost/worker/opus"
)

// TestNoCgo: without cgo the package builds, and says why it cannot
// encode or decode.
func TestNoCgo(t *testing.T) {
	if _, err := opus.NewEncoder(0); !errors.Is(err, opus.ErrNoCgo) {
		t.Errorf("NewEncoder: %v, want ErrNoCgo", err)
	}
	if _, err := opus.NewEncoder(1); !errors.Is(err, opus.ErrBitrate) {
		t.Errorf("NewEncoder(1): %v, want ErrBitrate", err)
	}
	if _, err := opus.NewDecoder(); !errors.Is(err, opus.ErrNoCgo) {
		t.Errorf("NewDecoder: %v, want ErrNoCgo", err)
	}
}
