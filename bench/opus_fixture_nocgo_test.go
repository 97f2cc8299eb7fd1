//go:build !cgo

package bench_test

import "testing"

func writeOpusFixture(t *testing.T) {
	t.Fatal("writing the Opus fixture needs a build with cgo and libopus")
}
