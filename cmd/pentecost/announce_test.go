package main

import (
	"crypto/tls"
	"crypto/x509"
	"html"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pentecost/pentecost/lan"
)

// TestServe_ListenerURLs checks the start-up text names where listeners
// join: the address listened on, or every LAN address when listening on
// all of them (the machine's real interfaces), and PUBLIC_URL when set.
func TestServe_ListenerURLs(t *testing.T) {
	t.Run("OneAddress", func(t *testing.T) {
		m, stdout := MustRunMain(t, t.TempDir(), nil)
		plain, _ := m.Listening()
		want := "http://127.0.0.1:" + strconv.Itoa(plain.Port) + "/"
		if !strings.Contains(stdout.String(), "Listeners on this network open") || !strings.Contains(stdout.String(), want) {
			t.Fatalf("start-up text lacks %s:\n%s", want, stdout)
		}
	})
	t.Run("EveryAddress", func(t *testing.T) {
		addrs, err := lan.MachineAddrs()
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) == 0 {
			t.Skip("this machine has no LAN address (only loopback or link-local interfaces): nothing to list")
		}
		m, stdout := MustRunMain(t, t.TempDir(), map[string]string{"PENTECOST_ADDR": ":0"})
		plain, _ := m.Listening()
		for _, a := range addrs {
			want := lan.BaseURL("http", a.String(), plain.Port) + "/"
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("start-up text lacks %s:\n%s", want, stdout)
			}
		}
		if strings.Count(stdout.String(), "Listeners on this network open") != 1 {
			t.Errorf("listener URLs not printed exactly once:\n%s", stdout)
		}
	})
	t.Run("PublicURL", func(t *testing.T) {
		_, stdout := MustRunMain(t, t.TempDir(), map[string]string{"PUBLIC_URL": "https://live.example.org/"})
		if !strings.Contains(stdout.String(), "  https://live.example.org/\n") {
			t.Fatalf("start-up text lacks PUBLIC_URL:\n%s", stdout)
		}
	})
}

// TestServe_TLSSelfSignedListenerLinks checks that a speaker page served
// over HTTPS (--tls-self-signed) hands out listener links on the plain
// HTTP port, which phones open without a certificate warning.
func TestServe_TLSSelfSignedListenerLinks(t *testing.T) {
	m, _ := MustRunMain(t, t.TempDir(), map[string]string{"PENTECOST_TLS_SELF_SIGNED": "true", "PENTECOST_TLS_ADDR": "127.0.0.1:0"})
	plain, tlsAddr := m.Listening()
	pool := x509.NewCertPool()
	pool.AddCert(m.Local.CA())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://127.0.0.1:" + strconv.Itoa(tlsAddr.Port) + "/speak")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	meta := regexp.MustCompile(`name="pentecost-config" content="([^"]*)"`).FindSubmatch(body)
	if meta == nil {
		t.Fatalf("no page config in /speak:\n%s", body)
	}
	cfg := html.UnescapeString(string(meta[1]))
	if !strings.Contains(cfg, `"http://`) || !strings.Contains(cfg, ":"+strconv.Itoa(plain.Port)+`"`) || strings.Contains(cfg, strconv.Itoa(tlsAddr.Port)) {
		t.Fatalf("listener bases of the HTTPS speaker page are not on plain port %d: %s", plain.Port, cfg)
	}
}
