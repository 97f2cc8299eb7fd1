package web_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/skip2/go-qrcode"

	"github.com/pentecost/pentecost/sessionid"
	"github.com/pentecost/pentecost/web"
)

// get fetches url and returns the response with its body read.
func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	// Redirects are checked, not followed.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func newPages(t *testing.T, configure func(*web.Handler)) *httptest.Server {
	srv := httptest.NewServer(newHandler(configure))
	t.Cleanup(srv.Close)
	return srv
}

// newHandler returns a Handler set up by configure (if not nil).
func newHandler(configure func(*web.Handler)) *web.Handler {
	h := web.NewHandler()
	if configure != nil {
		configure(h)
	}
	return h
}

// mustURL parses a URL the test made.
func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func itoa(n int) string { return strconv.Itoa(n) }

var scriptTag = regexp.MustCompile(`(?is)<script\b[^>]*>`)

func TestPages(t *testing.T) {
	srv := newPages(t, nil)
	for _, tc := range []struct {
		name, path, script string
	}{
		{"Landing", "/", "/static/js/landing.js"},
		{"Listener", "/listen/golden-eagle-427", "/static/js/listener.js"},
		{"Speaker", "/speak", "/static/js/speaker.js"},
		{"Admin", "/admin", "/static/js/admin.js"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, srv.URL+tc.path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if !strings.Contains(body, `src="`+tc.script+`"`) {
				t.Errorf("page does not load %s", tc.script)
			}
			// The policy forbids inline scripts, so every script must be a file.
			tags := scriptTag.FindAllString(body, -1)
			if len(tags) == 0 {
				t.Fatal("no script tag")
			}
			for _, tag := range tags {
				if !strings.Contains(tag, "src=") || !strings.Contains(tag, `type="module"`) {
					t.Errorf("script tag %s is not an external module", tag)
				}
			}
			if strings.Contains(body, " style=\"") || strings.Contains(body, " onclick=") {
				t.Error("page has inline style or handler attributes the policy would block")
			}
			checkSecurityHeaders(t, resp, srv.URL)
		})
	}
}

func checkSecurityHeaders(t *testing.T, resp *http.Response, base string) {
	t.Helper()
	csp := resp.Header.Get("Content-Security-Policy")
	host := strings.TrimPrefix(base, "http://")
	for _, want := range []string{"default-src 'self'", "script-src 'self' 'wasm-unsafe-eval';", "style-src 'self'", "frame-ancestors 'none'", "ws://" + host, "wss://" + host} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	// 'wasm-unsafe-eval' (for the vendored Opus decoder) allows WebAssembly
	// only; JavaScript eval and inline code stay forbidden.
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "'unsafe-eval'") {
		t.Errorf("Content-Security-Policy allows unsafe code: %q", csp)
	}
	for k, v := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestListenRedirect(t *testing.T) {
	srv := newPages(t, nil)
	t.Run("Canonical", func(t *testing.T) {
		resp, _ := get(t, srv.URL+"/listen/Golden-Eagle-427?lang=es")
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("status = %d", resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); loc != "/listen/golden-eagle-427?lang=es" {
			t.Fatalf("Location = %q", loc)
		}
	})
	t.Run("InvalidStillGetsPage", func(t *testing.T) {
		// The page itself tells the person the link is broken.
		resp, body := get(t, srv.URL+"/listen/not-a-code")
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "listener.js") {
			t.Fatalf("status = %d", resp.StatusCode)
		}
	})
}

func TestStatic(t *testing.T) {
	srv := newPages(t, nil)
	t.Run("OK", func(t *testing.T) {
		resp, body := get(t, srv.URL+"/static/js/pentecost.js")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d", resp.StatusCode)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
			t.Errorf("Content-Type = %q", ct)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("Cache-Control = %q", cc)
		}
		if !strings.Contains(body, "export class Listener") {
			t.Error("unexpected body")
		}
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatal("no ETag")
		}
		again, body := get(t, srv.URL+"/static/js/pentecost.js", "If-None-Match", etag)
		if again.StatusCode != http.StatusNotModified || body != "" {
			t.Fatalf("revalidation: status = %d, %d bytes", again.StatusCode, len(body))
		}
		checkSecurityHeaders(t, resp, srv.URL)
	})
	t.Run("Types", func(t *testing.T) {
		for p, want := range map[string]string{
			"/static/css/app.css":   "text/css; charset=utf-8",
			"/static/favicon.svg":   "image/svg+xml",
			"/static/js/speaker.js": "text/javascript; charset=utf-8",
			// The WebAssembly is text inside the script: it must be read as UTF-8.
			"/static/vendor/opus-decoder/opus-decoder.min.js": "text/javascript; charset=utf-8",
		} {
			resp, _ := get(t, srv.URL+p)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != want {
				t.Errorf("%s: status %d, Content-Type %q", p, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		for _, p := range []string{"/static/js/nope.js", "/static/", "/static/js", "/nope"} {
			resp, _ := get(t, srv.URL+p)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: status = %d", p, resp.StatusCode)
			}
		}
	})
}

// TestReferences checks that every asset a page or module refers to is
// served, so a renamed file cannot break a page unnoticed.
func TestReferences(t *testing.T) {
	srv := newPages(t, nil)
	ref := regexp.MustCompile(`(?:src|href)="(/static/[^"]+)"|from '(\./[^']+)'|'(/static/[^']+)'`)
	seen := map[string]bool{}
	check := func(from, target string) {
		if seen[target] {
			return
		}
		seen[target] = true
		resp, _ := get(t, srv.URL+target)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s refers to %s: status %d", from, target, resp.StatusCode)
		}
	}
	var pages []string
	for _, p := range []string{"/", "/speak", "/admin", "/listen/golden-eagle-427"} {
		_, body := get(t, srv.URL+p)
		pages = append(pages, body)
		for _, m := range ref.FindAllStringSubmatch(body, -1) {
			check(p, m[1])
		}
	}
	err := fs.WalkDir(os.DirFS("static/js"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path.Join("static/js", p))
		if err != nil {
			return err
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			switch {
			case m[2] != "":
				check(p, "/static/js/"+strings.TrimPrefix(m[2], "./"))
			case m[3] != "":
				check(p, m[3])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 8 {
		t.Fatalf("only %d references found: %v", len(seen), seen)
	}
	// Every element a script looks up by id must exist in some page.
	ids := regexp.MustCompile(`\$\('([a-z0-9-]+)'\)`)
	all := strings.Join(pages, "\n")
	for _, f := range []string{"landing.js", "listener.js", "speaker.js", "admin.js"} {
		b, err := os.ReadFile("static/js/" + f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ids.FindAllStringSubmatch(string(b), -1) {
			if !strings.Contains(all, `id="`+m[1]+`"`) {
				t.Errorf("%s looks up #%s, which no page has", f, m[1])
			}
		}
	}
}

// svgDoc is the part of the QR SVG the test reads back.
type svgDoc struct {
	XMLName xml.Name `xml:"svg"`
	ViewBox string   `xml:"viewBox,attr"`
	Path    struct {
		D string `xml:"d,attr"`
	} `xml:"path"`
}

// modules redraws the module matrix from the SVG's path.
func modules(t *testing.T, svg string) [][]bool {
	t.Helper()
	var doc svgDoc
	if err := xml.Unmarshal([]byte(svg), &doc); err != nil {
		t.Fatalf("QR code is not valid XML: %v", err)
	}
	var n int
	if _, err := fmt.Sscanf(doc.ViewBox, "0 0 %d %d", &n, &n); err != nil || n < 21 {
		t.Fatalf("viewBox = %q", doc.ViewBox)
	}
	m := make([][]bool, n)
	for i := range m {
		m[i] = make([]bool, n)
	}
	run := regexp.MustCompile(`^M(\d+) (\d+)h(\d+)v1h-(\d+)z`)
	d := doc.Path.D
	for d != "" {
		g := run.FindStringSubmatch(d)
		if g == nil {
			t.Fatalf("unexpected path data at %.30q", d)
		}
		var x, y, w, w2 int
		fmt.Sscan(g[1], &x)
		fmt.Sscan(g[2], &y)
		fmt.Sscan(g[3], &w)
		fmt.Sscan(g[4], &w2)
		if w != w2 || y >= n || x+w > n {
			t.Fatalf("bad run %q", g[0])
		}
		for i := x; i < x+w; i++ {
			m[y][i] = true
		}
		d = d[len(g[0]):]
	}
	return m
}

// noLAN configures a Handler for a machine with no LAN address, so that
// links keep the loopback host the test server listens on.
func noLAN(h *web.Handler) { h.LANAddrs = func() ([]netip.Addr, error) { return nil, nil } }

// checkQR fetches a QR code and fails unless it encodes wantLink, module
// for module (the code go-qrcode makes of wantLink). host, if not empty,
// is sent as the request's Host.
func checkQR(t *testing.T, base, path, host, wantLink string) {
	t.Helper()
	resp, body := getHost(t, base+path, host)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "image/svg+xml" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !qrEncodes(t, body, wantLink) {
		t.Fatalf("the QR code does not encode %q", wantLink)
	}
}

// qrEncodes reports whether svg is the QR code go-qrcode makes of link,
// module for module (no QR decoder needed: the encoder is deterministic).
func qrEncodes(t *testing.T, svg, link string) bool {
	t.Helper()
	want, err := qrcode.New(link, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	got := modules(t, svg)
	bits := want.Bitmap()
	if len(got) != len(bits) {
		t.Logf("QR code is %d modules wide, want %d for %q", len(got), len(bits), link)
		return false
	}
	for y := range bits {
		for x := range bits[y] {
			if got[y][x] != bits[y][x] {
				t.Logf("module (%d,%d) differs from the code of %q", x, y, link)
				return false
			}
		}
	}
	return true
}

// getHost is get with the request's Host set to host (when not empty).
func getHost(t *testing.T, url, host string) (*http.Response, string) {
	t.Helper()
	return getClient(t, http.DefaultClient, url, host)
}

// getClient is getHost with the given client (e.g. a TLS test server's).
func getClient(t *testing.T, c *http.Client, url, host string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestQR(t *testing.T) {
	check := func(t *testing.T, base, path, wantLink string) {
		t.Helper()
		checkQR(t, base, path, "", wantLink)
	}
	t.Run("OK", func(t *testing.T) {
		srv := newPages(t, noLAN)
		check(t, srv.URL, "/qr/golden-eagle-427.svg", srv.URL+"/listen/golden-eagle-427")
	})
	t.Run("Forgiving", func(t *testing.T) {
		srv := newPages(t, noLAN)
		check(t, srv.URL, "/qr/Golden-Eagle-427.svg", srv.URL+"/listen/golden-eagle-427")
	})
	t.Run("PublicURL", func(t *testing.T) {
		srv := newPages(t, func(h *web.Handler) { h.PublicURL = "https://live.example.org/" })
		check(t, srv.URL, "/qr/golden-eagle-427.svg", "https://live.example.org/listen/golden-eagle-427")
	})
	for _, tc := range []struct {
		name, path, code string
		status           int
	}{
		{"ErrInvalidSessionID", "/qr/not-a-session.svg", "INVALID_SESSION_ID", http.StatusBadRequest},
		{"ErrInvalidSessionIDNumber", "/qr/golden-eagle-42.svg", "INVALID_SESSION_ID", http.StatusBadRequest},
		{"ErrNotFound", "/qr/golden-eagle-427.png", "NOT_FOUND", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newPages(t, nil)
			resp, body := get(t, srv.URL+tc.path)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			var e struct{ Type, Code, Message string }
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if e.Type != "error" || e.Code != tc.code || e.Message == "" {
				t.Fatalf("error = %+v, want code %s", e, tc.code)
			}
		})
	}
	t.Run("ErrHostTooLong", func(t *testing.T) {
		// The link is built from Host; one no QR code can hold was an
		// INTERNAL_ERROR from the encoder.
		srv := newPages(t, nil)
		req, err := http.NewRequest("GET", srv.URL+"/qr/golden-eagle-427.svg", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = strings.Repeat("a", 3000)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Code string }
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusBadRequest || e.Code != "VALIDATION_INVALID_FIELD" {
			t.Fatalf("status %d, code %q (%v), want 400 VALIDATION_INVALID_FIELD", resp.StatusCode, e.Code, err)
		}
	})
}

func TestSignInLinks(t *testing.T) {
	srv := newPages(t, func(h *web.Handler) {
		h.SignInLinks = []web.SignInLink{{Name: "Company <SSO>", URL: "https://id.example.org/authorize?client_id=x&response_type=token"}}
		h.PublicURL = "https://live.example.org"
	})
	_, body := get(t, srv.URL+"/speak")
	m := regexp.MustCompile(`<meta name="pentecost-config" content="([^"]*)">`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no config meta tag")
	}
	var cfg struct {
		PublicURL   string           `json:"publicUrl"`
		SignInLinks []web.SignInLink `json:"signInLinks"`
	}
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &cfg); err != nil {
		t.Fatalf("config %q: %v", m[1], err)
	}
	want := web.SignInLink{Name: "Company <SSO>", URL: "https://id.example.org/authorize?client_id=x&response_type=token", TokenParam: "id_token"}
	if cfg.PublicURL != "https://live.example.org" || len(cfg.SignInLinks) != 1 || cfg.SignInLinks[0] != want {
		t.Fatalf("config = %+v", cfg)
	}
}

// TestMounted serves the pages beside the API, as cmd/pentecost does: the
// routes must not clash with the API's, and errors carry its correlation ID.
func TestMounted(t *testing.T) {
	srv := startServer(t, nil, nil)
	for _, p := range []string{"/", "/speak", "/admin", "/listen/golden-eagle-427", "/static/js/pentecost.js", "/qr/golden-eagle-427.svg", "/languages"} {
		resp, _ := get(t, srv.URL+p)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status = %d", p, resp.StatusCode)
		}
	}
	resp, body := get(t, srv.URL+"/qr/nope.svg")
	var e struct{ Code, CorrelationID string }
	if err := json.Unmarshal([]byte(body), &e); err != nil || resp.StatusCode != http.StatusBadRequest || e.Code != "INVALID_SESSION_ID" || e.CorrelationID == "" {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	resp, _ = get(t, srv.URL+"/nope")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/nope: status = %d", resp.StatusCode)
	}
}

// TestNormalizeMatchesServer checks that the pages' forgiving reading of a
// typed session code (pentecost.js) agrees with the server's.
func TestNormalizeMatchesServer(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: install Node.js, then run ./scripts/test")
	}
	inputs := []string{
		"golden-eagle-427", "Golden-Eagle-427", " golden eagle 427 ", "GOLDEN_EAGLE_427", "golden.eagle.427",
		"golden--eagle--427", "-golden-eagle-427-", "golden\teagle\n427", "golden-eagle-42", "golden-eagle-042",
		"golden-eagle-1000", "golden-427", "golden-eagle-427-x", "gölden-eagle-427", "golden-eagle-4२7",
		"", "   ", "a-b-100", "a-b-999", strings.Repeat("a", 60) + "-b-100", "golden eagle\u00a0427",
		"golden-\u212aing-427", "golden/eagle/427",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("abcAZ019 -_.\t/é\u212a")
	words := []string{"amen", "Grace", "LIGHT", "x", "dove1"}
	seps := []rune(" -_.\t\n")
	junk := func(b *strings.Builder, least int) {
		for range least + rng.IntN(3) {
			if rng.IntN(10) < 8 {
				b.WriteRune(seps[rng.IntN(len(seps))])
			} else {
				b.WriteRune(alphabet[rng.IntN(len(alphabet))])
			}
		}
	}
	for range 500 {
		// word, junk, word, junk, number: often valid, often not.
		var b strings.Builder
		junk(&b, 0)
		b.WriteString(words[rng.IntN(len(words))])
		junk(&b, 1)
		b.WriteString(words[rng.IntN(len(words))])
		junk(&b, 1)
		b.WriteString(fmt.Sprint(rng.IntN(1100)))
		junk(&b, 0)
		inputs = append(inputs, b.String())
	}
	js, err := json.Marshal(inputs)
	if err != nil {
		t.Fatal(err)
	}
	script := `import { normalizeSessionId } from './static/js/pentecost.js';
const inputs = JSON.parse(process.argv[1]);
console.log(JSON.stringify(inputs.map((s) => normalizeSessionId(s))));`
	cmd := exec.Command(node, "--input-type=module", "-e", script, string(js))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var got []*string
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got) != len(inputs) {
		t.Fatalf("node output %q: %v", out.String(), err)
	}
	valid := 0
	for i, in := range inputs {
		want, err := sessionid.Normalize(in)
		switch {
		case err != nil && got[i] != nil:
			t.Errorf("%q: pages accept %q, the server refuses it", in, *got[i])
		case err == nil && got[i] == nil:
			t.Errorf("%q: pages refuse it, the server reads %q", in, want)
		case err == nil && *got[i] != want:
			t.Errorf("%q: pages read %q, the server %q", in, *got[i], want)
		case err == nil:
			valid++
		}
	}
	t.Logf("%d of %d inputs are session codes", valid, len(inputs))
	if valid < 50 {
		t.Fatalf("only %d valid inputs: the cases do not exercise acceptance", valid)
	}
}
