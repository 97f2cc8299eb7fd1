package web_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/pentecost/pentecost/lan"
	"github.com/pentecost/pentecost/web"
)

// venueLAN configures a Handler for a laptop with three LAN addresses.
func venueLAN(h *web.Handler) {
	h.LANAddrs = func() ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("192.168.1.20"), netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("fd00::2")}, nil
	}
}

// speakConfig fetches /speak with the given Host and returns the page's
// listener bases.
func speakConfig(t *testing.T, base, host string) []string {
	t.Helper()
	resp, body := getHost(t, base+"/speak", host)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/speak: status %d", resp.StatusCode)
	}
	m := regexp.MustCompile(`<meta name="pentecost-config" content="([^"]*)">`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no config meta tag")
	}
	var cfg struct {
		ListenerBases []string `json:"listenerBases"`
	}
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &cfg); err != nil {
		t.Fatalf("config %q: %v", m[1], err)
	}
	return cfg.ListenerBases
}

// TestQRListenerLinks checks which address the listener link and its QR
// code carry for each way the speaker may have opened the page, and that
// the speaker page offers the same candidates.
func TestQRListenerLinks(t *testing.T) {
	srv := newPages(t, venueLAN)
	port := mustURL(t, srv.URL).Port()
	lanBases := []string{"http://192.168.1.20:" + port, "http://10.0.0.7:" + port, "http://[fd00::2]:" + port}
	for _, tc := range []struct {
		name, host, query, want string
		bases                   []string
	}{
		{"Loopback", "127.0.0.1:" + port, "", lanBases[0], lanBases},
		{"LoopbackOther", "127.1.2.3:" + port, "", lanBases[0], lanBases},
		{"Localhost", "localhost:" + port, "", lanBases[0], lanBases},
		{"LocalhostSubdomain", "speaker.localhost:" + port, "", lanBases[0], lanBases},
		{"LoopbackIPv6", "[::1]:" + port, "", lanBases[0], lanBases},
		{"LoopbackNoPort", "localhost", "", "http://192.168.1.20", []string{"http://192.168.1.20", "http://10.0.0.7", "http://[fd00::2]"}},
		{"LANHostUnchanged", "10.0.0.7:" + port, "", lanBases[1], []string{lanBases[1], lanBases[0], lanBases[2]}},
		{"LANHostIPv6", "[fd00::2]:" + port, "", lanBases[2], []string{lanBases[2], lanBases[0], lanBases[1]}},
		{"NameUnchanged", "laptop.example:" + port, "", "http://laptop.example:" + port, []string{"http://laptop.example:" + port}},
		{"OtherAddressUnchanged", "203.0.113.9:" + port, "", "http://203.0.113.9:" + port, []string{"http://203.0.113.9:" + port}},
		{"PickByBase", "127.0.0.1:" + port, "?base=1", lanBases[1], lanBases},
		{"PickByBaseIPv6", "127.0.0.1:" + port, "?base=2", lanBases[2], lanBases},
		{"PickByHost", "127.0.0.1:" + port, "?host=10.0.0.7", lanBases[1], lanBases},
		{"PickByHostPort", "127.0.0.1:" + port, "?host=10.0.0.7:" + port, lanBases[1], lanBases},
		{"PickByHostIPv6", "127.0.0.1:" + port, "?host=" + url.QueryEscape("[fd00::2]:"+port), lanBases[2], lanBases},
		{"PickByHostIPv6Bare", "127.0.0.1:" + port, "?host=fd00::2", lanBases[2], lanBases},
		{"PickByHostIPv6Long", "127.0.0.1:" + port, "?host=fd00:0:0:0:0:0:0:2", lanBases[2], lanBases},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkQR(t, srv.URL, "/qr/golden-eagle-427.svg"+tc.query, tc.host, tc.want+"/listen/golden-eagle-427")
			if got := speakConfig(t, srv.URL, tc.host); !reflect.DeepEqual(got, tc.bases) {
				t.Errorf("speaker page offers %q, want %q", got, tc.bases)
			}
		})
	}

	t.Run("PublicURLWins", func(t *testing.T) {
		srv := newPages(t, func(h *web.Handler) {
			venueLAN(h)
			h.PublicURL = "https://live.example.org/"
			h.ListenerPort = 8080
		})
		checkQR(t, srv.URL, "/qr/golden-eagle-427.svg", "", "https://live.example.org/listen/golden-eagle-427")
		checkQR(t, srv.URL, "/qr/golden-eagle-427.svg?base=0", "", "https://live.example.org/listen/golden-eagle-427")
		checkQR(t, srv.URL, "/qr/golden-eagle-427.svg?host=live.example.org", "", "https://live.example.org/listen/golden-eagle-427")
		if got := speakConfig(t, srv.URL, ""); !reflect.DeepEqual(got, []string{"https://live.example.org"}) {
			t.Errorf("speaker page offers %q", got)
		}
		expectFieldError(t, srv.URL+"/qr/golden-eagle-427.svg?host=192.168.1.20", "", "host")
	})

	t.Run("ListenerPort", func(t *testing.T) {
		// The speaker page is on TLS; phones go to the plain-HTTP port.
		srv := httptest.NewTLSServer(newHandler(func(h *web.Handler) { venueLAN(h); h.ListenerPort = 8080 }))
		t.Cleanup(srv.Close)
		tlsPort := mustURL(t, srv.URL).Port()
		for host, want := range map[string]string{
			"localhost:" + tlsPort:      "http://192.168.1.20:8080",
			"192.168.1.20:" + tlsPort:   "http://192.168.1.20:8080",
			"laptop.example:" + tlsPort: "http://laptop.example:8080",
		} {
			resp, body := getClient(t, srv.Client(), srv.URL+"/qr/golden-eagle-427.svg", host)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d: %s", host, resp.StatusCode, body)
			}
			if got := qrEncodes(t, body, want+"/listen/golden-eagle-427"); !got {
				t.Errorf("Host %s: the QR code does not encode %s", host, want)
			}
		}
	})

	t.Run("TLSWithoutListenerPort", func(t *testing.T) {
		srv := httptest.NewTLSServer(newHandler(venueLAN))
		t.Cleanup(srv.Close)
		tlsPort := mustURL(t, srv.URL).Port()
		resp, body := getClient(t, srv.Client(), srv.URL+"/qr/golden-eagle-427.svg", "")
		if resp.StatusCode != http.StatusOK || !qrEncodes(t, body, "https://192.168.1.20:"+tlsPort+"/listen/golden-eagle-427") {
			t.Fatalf("status %d; the QR code does not encode https://192.168.1.20:%s/listen/…", resp.StatusCode, tlsPort)
		}
	})

	for _, tc := range []struct {
		name, host, query, field string
	}{
		{"ErrHostNotCandidate", "127.0.0.1:" + port, "?host=evil.example", "host"},
		{"ErrHostURL", "127.0.0.1:" + port, "?host=" + url.QueryEscape("http://evil.example/x"), "host"},
		{"ErrHostEmpty", "127.0.0.1:" + port, "?host=", "host"},
		{"ErrHostLoopback", "127.0.0.1:" + port, "?host=127.0.0.1", "host"},
		{"ErrHostLANFromName", "laptop.example:" + port, "?host=192.168.1.20", "host"},
		{"ErrBaseTooBig", "127.0.0.1:" + port, "?base=3", "base"},
		{"ErrBaseNegative", "127.0.0.1:" + port, "?base=-1", "base"},
		{"ErrBaseNotNumber", "127.0.0.1:" + port, "?base=http://evil.example", "base"},
		{"ErrBaseAndHost", "127.0.0.1:" + port, "?base=0&host=10.0.0.7", "base"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectFieldError(t, srv.URL+"/qr/golden-eagle-427.svg"+tc.query, tc.host, tc.field)
		})
	}
}

// TestQRMachineLAN runs the link choice against this machine's real
// interfaces: from a page opened at 127.0.0.1, the QR code and link carry
// its first LAN address and the same port.
func TestQRMachineLAN(t *testing.T) {
	addrs, err := lan.MachineAddrs()
	if err != nil {
		t.Fatalf("reading the interfaces: %v", err)
	}
	if len(addrs) == 0 {
		t.Skip("this machine has no LAN address (no interface up with a non-loopback, non-link-local address): links stay on loopback, which TestQR covers")
	}
	srv := newPages(t, nil) // the real interface list
	port := mustURL(t, srv.URL).Port()
	want := lan.URLs("http", atoi(t, port))
	checkQR(t, srv.URL, "/qr/golden-eagle-427.svg", "", want[0]+"/listen/golden-eagle-427")
	if got := speakConfig(t, srv.URL, ""); !reflect.DeepEqual(got, want) {
		t.Errorf("speaker page offers %q, want %q", got, want)
	}
	for i, w := range want {
		u := mustURL(t, w)
		if ip, err := netip.ParseAddr(u.Hostname()); err != nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() {
			t.Errorf("candidate %s is not a LAN address", w)
		}
		checkQR(t, srv.URL, "/qr/golden-eagle-427.svg?base="+itoa(i), "", w+"/listen/golden-eagle-427")
		checkQR(t, srv.URL, "/qr/golden-eagle-427.svg?host="+url.QueryEscape(u.Host), "", w+"/listen/golden-eagle-427")
	}
	t.Logf("listener links from 127.0.0.1: %v", want)
}

// expectFieldError fetches url with Host host and fails unless the answer
// is 400 VALIDATION_INVALID_FIELD naming field.
func expectFieldError(t *testing.T, url, host, field string) {
	t.Helper()
	resp, body := getHost(t, url, host)
	var e struct {
		Code, Message string
		Details       map[string]string
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || resp.StatusCode != http.StatusBadRequest ||
		e.Code != "VALIDATION_INVALID_FIELD" || e.Details["field"] != field || e.Message == "" {
		t.Fatalf("status %d, body %s: want 400 VALIDATION_INVALID_FIELD for %s", resp.StatusCode, body, field)
	}
}

// TestListenerLinksHostSpoofing checks that a client from the internet
// cannot learn this machine's LAN addresses by sending Host: localhost (or
// one of the addresses), directly or through a proxy.
func TestListenerLinksHostSpoofing(t *testing.T) {
	h := newHandler(venueLAN)
	for _, tc := range []struct {
		name, remote, host, forwarded string
		lan                           bool
	}{
		{name: "LocalSpeaker", remote: "127.0.0.1:50000", host: "localhost:8080", lan: true},
		{name: "LANClientAtLANAddress", remote: "192.168.1.33:50000", host: "192.168.1.20:8080", lan: true},
		{name: "InternetClaimsLocalhost", remote: "203.0.113.5:50000", host: "localhost:8080"},
		{name: "InternetAtLANAddress", remote: "203.0.113.5:50000", host: "192.168.1.20:8080"},
		{name: "ThroughProxy", remote: "127.0.0.1:50000", host: "localhost:8080", forwarded: "203.0.113.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/speak", "/qr/golden-eagle-427.svg"} {
				r := httptest.NewRequest("GET", "http://"+tc.host+path, nil)
				r.RemoteAddr = tc.remote
				if tc.forwarded != "" {
					r.Header.Set("X-Forwarded-For", tc.forwarded)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					t.Fatalf("%s: status %d", path, w.Code)
				}
				body := w.Body.String()
				if path == "/qr/golden-eagle-427.svg" {
					want := "http://" + tc.host + "/listen/golden-eagle-427"
					if tc.lan && tc.host == "localhost:8080" {
						want = "http://192.168.1.20:8080/listen/golden-eagle-427"
					}
					if !qrEncodes(t, body, want) {
						t.Fatalf("QR code does not encode %s", want)
					}
					continue
				}
				leaked := strings.Contains(body, "10.0.0.7")
				if leaked != tc.lan {
					t.Fatalf("speaker page lists the other LAN addresses = %v, want %v", leaked, tc.lan)
				}
			}
		})
	}
}
