package client_test

import (
	"testing"
	"time"

	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/servertest"
)

// wait bounds how long a test waits for something that should happen soon.
const wait = 10 * time.Second

// workerSecret is the worker credential the test server accepts.
const workerSecret = "test-worker-secret"

// env is a whole Pentecost server on loopback (see servertest) whose
// workers get their session lists every 50 ms.
type env struct {
	*servertest.Server
	t testing.TB
}

// newEnv starts a server; configure adjusts the realtime server before Open.
func newEnv(t testing.TB, configure ...func(*realtime.Server)) *env {
	t.Helper()
	srv := servertest.Start(t,
		servertest.WorkerSecret(workerSecret),
		servertest.Configure(func(s *realtime.Server) { s.WorkerUpdateInterval = 50 * time.Millisecond }),
		servertest.Configure(configure...))
	return &env{Server: srv, t: t}
}

// token returns a speaker token for user id.
func (e *env) token(id string) string { return e.Token(id) }

// createSession creates a session owned by user id with English as source.
func (e *env) createSession(id string) string { return e.CreateSession(id, "en").ID }

// cutAll closes every server-side connection at the TCP level.
func (e *env) cutAll() int { return e.CutAll() }

// poll waits until cond holds, failing the test after wait.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	servertest.Poll(t, wait, what, cond)
}

// chunk returns audio chunk i of n bytes; every chunk differs, so a
// receiver can check them byte for byte.
func chunk(i, n int) []byte {
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(i*131 + j*7 + j>>8)
	}
	b[0], b[1], b[2], b[3] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return b
}

// chunkIndex returns the i chunk() wrote into b.
func chunkIndex(b []byte) int {
	return int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
}

// metric returns the sum of a counter or gauge of the realtime server.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	mfs, err := e.Registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
