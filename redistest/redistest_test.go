package redistest_test

import (
	"net"
	"strings"
	"testing"

	"github.com/pentecost/pentecost/redistest"
)

func TestServer(t *testing.T) {
	srv := redistest.Start(t)
	if !srv.Running() {
		t.Fatal("a started server does not answer PING")
	}
	if !strings.HasPrefix(srv.URL(), "redis://127.0.0.1:") || !strings.HasSuffix(srv.URL(), "/0") {
		t.Fatalf("URL = %q", srv.URL())
	}
	if _, _, err := net.SplitHostPort(srv.Addr()); err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	if srv.Running() {
		t.Fatal("a killed server answers")
	}
	srv.Stop() // on a stopped server: nothing happens
	addr := srv.Addr()
	srv.Restart()
	if !srv.Running() || srv.Addr() != addr {
		t.Fatalf("restarted server running %v at %s, want %s", srv.Running(), srv.Addr(), addr)
	}
	srv.Stop()
	if srv.Running() {
		t.Fatal("a stopped server answers")
	}
}

func TestStart_Independent(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	if a.Addr() == b.Addr() {
		t.Fatal("two servers share an address")
	}
}
