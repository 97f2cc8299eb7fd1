package web_test

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
	"github.com/pentecost/pentecost/lan"
	"github.com/pentecost/pentecost/realtime"
	"github.com/pentecost/pentecost/web"
)

// speakerResult is what web/e2e/speaker.mjs saw of the listener links:
// the link the page shows and the QR code it loaded, for each address
// picked.
type speakerResult struct {
	Links []struct {
		Href string `json:"href"`
		QR   string `json:"qr"`  // the <img> src
		SVG  string `json:"svg"` // what that src served
	} `json:"links"`
}

// TestBrowserSpeaker drives the speaker page as a speaker in a room does:
// opened at http://127.0.0.1:PORT/speak, its link and QR code point at
// this machine's LAN address, and the address picker switches both; the
// "Show to the room" view shows the code, the QR code and the listeners
// by language as they join; a worker's translation shows as live; after
// the tab is closed, a new tab finds the session under "Your sessions"
// and Resume reattaches. Screenshots go to web/e2e/screenshots.
func TestBrowserSpeaker(t *testing.T) {
	requireBrowser(t)
	addrs, err := lan.MachineAddrs()
	if err != nil {
		t.Fatalf("reading the interfaces: %v", err)
	}
	// The picker needs two addresses. This machine's come first; when it
	// has fewer than two, documentation addresses (RFC 5737) fill in, so
	// that the picker is still exercised; the default link is then still
	// this machine's own address when it has one.
	lanAddrs := append([]netip.Addr(nil), addrs...)
	for _, fill := range []string{"198.51.100.7", "203.0.113.9"} {
		if len(lanAddrs) < 2 {
			lanAddrs = append(lanAddrs, netip.MustParseAddr(fill))
		}
	}
	if len(addrs) == 0 {
		t.Logf("this machine has no LAN address: the links use the stand-ins %v", lanAddrs)
	}
	workerSecret := auth.GeneratePassword()
	srv := startServer(t, func(h *web.Handler) {
		h.LANAddrs = func() ([]netip.Addr, error) { return lanAddrs, nil }
	}, func(rt *realtime.Server) {
		rt.ConnectionLimit = pentecost.Limit{Events: 200, Per: time.Minute}
		rt.WorkerVerifier = auth.NewWorkerSecrets([]string{"e2e:" + workerSecret})
	}, withNotifyingSessions())

	port := mustURL(t, srv.URL).Port()
	var bases []string
	for _, a := range lanAddrs {
		bases = append(bases, lan.BaseURL("http", a.String(), atoi(t, port)))
	}
	if len(addrs) > 0 && bases[0] != lan.URLs("http", atoi(t, port))[0] {
		t.Fatalf("the first listener base %s is not this machine's first LAN URL %v", bases[0], lan.URLs("http", atoi(t, port)))
	}
	basesJSON, err := json.Marshal(bases)
	if err != nil {
		t.Fatal(err)
	}
	result := filepath.Join(t.TempDir(), "speaker-result.json")
	runBrowserScript(t, "speaker.mjs",
		"PENTECOST_URL="+srv.URL, // http://127.0.0.1:PORT, a loopback address
		"PENTECOST_USERNAME="+srv.Username,
		"PENTECOST_PASSWORD="+srv.Password,
		"PENTECOST_WORKER_SECRET="+workerSecret,
		"PENTECOST_LISTENER_BASES="+string(basesJSON),
		"PENTECOST_E2E_RESULT="+result,
	)

	// The QR codes the page loaded encode exactly the links it shows.
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatalf("the script wrote no result: %v", err)
	}
	var got speakerResult
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Links) < 2 {
		t.Fatalf("the script recorded %d links, want the default and a picked one", len(got.Links))
	}
	for i, l := range got.Links {
		if !strings.HasPrefix(l.Href, bases[i]+"/listen/") {
			t.Errorf("link %d is %s, want it under %s", i, l.Href, bases[i])
		}
		if !qrEncodes(t, l.SVG, l.Href) {
			t.Errorf("the QR code at %s does not encode the link shown, %s", l.QR, l.Href)
		}
	}
}
