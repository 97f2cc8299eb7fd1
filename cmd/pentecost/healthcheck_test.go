package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// healthcheck runs `pentecost healthcheck args` with env and returns its
// exit code and what it printed.
func healthcheck(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"healthcheck"}, args...), func(k string) string { return env[k] }, nil, &out, &out)
	if err == nil {
		return 0, out.String()
	}
	out.WriteString(err.Error())
	return exitCode(err), out.String()
}

func TestHealthcheck(t *testing.T) {
	m, _ := MustRunMain(t, t.TempDir(), nil)
	plain, _ := m.Listening()

	t.Run("OK", func(t *testing.T) {
		if code, out := healthcheck(t, nil, "--url", "http://"+plain.String()+"/healthz"); code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("URLFromPENTECOST_ADDR", func(t *testing.T) {
		// The container sets PENTECOST_ADDR=:PORT; the check must find the
		// server from that alone.
		env := map[string]string{"PENTECOST_ADDR": net.JoinHostPort("", strconv.Itoa(plain.Port))}
		code, out := healthcheck(t, env)
		if code != 0 || !strings.Contains(out, "http://127.0.0.1:"+strconv.Itoa(plain.Port)+"/healthz") {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
	t.Run("ErrNothingListening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if code, out := healthcheck(t, nil, "--url", "http://"+addr+"/healthz"); code != 1 {
			t.Fatalf("exit %d, want 1: %s", code, out)
		}
	})
	t.Run("ErrNotOK", func(t *testing.T) {
		for _, status := range []int{http.StatusServiceUnavailable, http.StatusFound} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if status == http.StatusFound {
					// A redirect to a healthy page is still not /healthz.
					http.Redirect(w, r, "http://"+plain.String()+"/healthz", status)
					return
				}
				w.WriteHeader(status)
			}))
			code, out := healthcheck(t, nil, "--url", srv.URL+"/healthz")
			srv.Close()
			if code != 1 || !strings.Contains(out, strconv.Itoa(status)) {
				t.Errorf("status %d: exit %d, want 1: %s", status, code, out)
			}
		}
	})
	t.Run("ErrUsage", func(t *testing.T) {
		for _, c := range []struct {
			env  map[string]string
			args []string
		}{
			{nil, []string{"--timeout", "0"}},
			{nil, []string{"--frobnicate"}},
			{nil, []string{"extra"}},
			{map[string]string{"PENTECOST_ADDR": "127.0.0.1:0"}, nil},
		} {
			if code, out := healthcheck(t, c.env, c.args...); code != 2 {
				t.Errorf("%v %v: exit %d, want 2: %s", c.env, c.args, code, out)
			}
		}
	})
	t.Run("Help", func(t *testing.T) {
		var out bytes.Buffer
		err := run(context.Background(), []string{"healthcheck", "--help"}, noEnv, nil, &out, io.Discard)
		if exitCode(err) != 0 || !strings.Contains(out.String(), "--url") {
			t.Fatalf("exit %d: %s", exitCode(err), out.String())
		}
	})
}

func TestHealthzURL(t *testing.T) {
	for addr, want := range map[string]string{
		":8080":          "http://127.0.0.1:8080/healthz",
		"0.0.0.0:9000":   "http://127.0.0.1:9000/healthz",
		"[::]:8080":      "http://[::1]:8080/healthz",
		"10.0.0.5:8080":  "http://10.0.0.5:8080/healthz",
		"localhost:8081": "http://localhost:8081/healthz",
	} {
		if got, err := healthzURL(addr); err != nil || got != want {
			t.Errorf("healthzURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
	for _, addr := range []string{"8080", ":0", ""} {
		if got, err := healthzURL(addr); err == nil {
			t.Errorf("healthzURL(%q) = %q, want an error", addr, got)
		}
	}
}
