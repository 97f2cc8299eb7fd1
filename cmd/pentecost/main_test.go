package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// MustRunMain starts the whole program in-process on a free loopback port
// with dataDir, as `pentecost serve` would, and stops it at test end.
func MustRunMain(tb testing.TB, dataDir string, env map[string]string, opts ...func(*Main)) (*Main, *bytes.Buffer) {
	tb.Helper()
	e := map[string]string{"PENTECOST_ADDR": "127.0.0.1:0", "PENTECOST_DATA_DIR": dataDir}
	for k, v := range env {
		e[k] = v
	}
	cfg, err := LoadConfig(nil, func(k string) string { return e[k] }, io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	var stdout bytes.Buffer
	m := NewMain(cfg, &stdout, io.Discard)
	for _, opt := range opts {
		opt(m)
	}
	if err := m.Run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m, &stdout
}

var adminPassword = regexp.MustCompile(`Created admin account "admin" with password: (\S+)`)

func do(tb testing.TB, method, url, token, body string) (int, map[string]any) {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			tb.Fatalf("%s %s: not JSON: %s", method, url, raw)
		}
	}
	return resp.StatusCode, out
}

// TestServe_FirstStartAndRestart walks a newcomer's first minutes: the admin
// password printed once, sign-in, a session, and the same state after a
// restart on the same data dir.
func TestServe_FirstStartAndRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var stderr bytes.Buffer // the password goes there, not to stdout
	m, _ := MustRunMain(t, dir, nil, func(m *Main) { m.Stderr = &stderr })
	match := adminPassword.FindStringSubmatch(stderr.String())
	if match == nil {
		t.Fatalf("no admin password printed; stderr:\n%s", &stderr)
	}
	url := m.HTTPServer.URL()

	status, body := do(t, "POST", url+"/auth/login", "", `{"username":"admin","password":"`+match[1]+`"}`)
	if status != 200 {
		t.Fatalf("login: %d %v", status, body)
	}
	token := body["token"].(string)

	status, body = do(t, "POST", url+"/sessions", token, `{"sourceLanguage":"en"}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, body)
	}
	id := body["sessionId"].(string)
	if status, body = do(t, "PATCH", url+"/sessions/"+id, token, `{"broadcastState":{"isMuted":true,"volume":0.25}}`); status != 200 {
		t.Fatalf("patch: %d %v", status, body)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// Same data dir: no new admin password, the session and its state are back,
	// and the token still verifies because the signing key is in the data dir.
	var stderr2 bytes.Buffer
	m2, _ := MustRunMain(t, dir, nil, func(m *Main) { m.Stderr = &stderr2 })
	if strings.Contains(stderr2.String(), "Created admin account") {
		t.Fatalf("admin created again on restart: %s", &stderr2)
	}
	status, body = do(t, "GET", m2.HTTPServer.URL()+"/sessions/"+strings.ToUpper(id), "", "")
	if status != 200 || body["sessionId"] != id {
		t.Fatalf("after restart: %d %v", status, body)
	}
	bs := body["broadcastState"].(map[string]any)
	if bs["isMuted"] != true || bs["volume"] != 0.25 {
		t.Fatalf("broadcast state lost: %v", bs)
	}
	if status, _ = do(t, "GET", m2.HTTPServer.URL()+"/sessions", token, ""); status != 200 {
		t.Fatalf("old token refused after restart: %d", status)
	}
}

// TestServe_SweepEndsIdleAndPurgesEnded runs the background sweep with short
// settings and checks that an idle session ends and, after the retention
// period, is deleted: only the sweep deletes, so this proves it runs.
func TestServe_SweepEndsIdleAndPurgesEnded(t *testing.T) {
	dir := t.TempDir()
	m, _ := MustRunMain(t, dir, map[string]string{"SESSION_MAX_DURATION_HOURS": "0.0001", "DATA_RETENTION_HOURS": "0.0001"}, // 0.36 s each
		func(m *Main) { m.SweepInterval = 50 * time.Millisecond })
	token := mustToken(t, dir, "admin")
	url := m.HTTPServer.URL()
	status, body := do(t, "POST", url+"/sessions", token, `{"sourceLanguage":"de"}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, body)
	}
	id := body["sessionId"].(string)
	waitFor(t, func() bool {
		s, _ := do(t, "GET", url+"/sessions/"+id, "", "")
		return s == 404
	})
}

// TestTokenCommand checks that `pentecost token` prints, as its last word, a
// token the running server accepts, and refuses unknown accounts.
func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	m, _ := MustRunMain(t, dir, nil)
	token := mustToken(t, dir, "admin")
	if status, body := do(t, "POST", m.HTTPServer.URL()+"/sessions", token, `{"sourceLanguage":"es"}`); status != 201 {
		t.Fatalf("create with minted token: %d %v", status, body)
	}

	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"token", "--data-dir", dir, "--user", "nobody"}, noEnv, nil, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("unknown user: err = %v", err)
	}
	err = run(context.Background(), []string{"token", "--data-dir", filepath.Join(dir, "missing")}, noEnv, nil, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "no Pentecost database") {
		t.Fatalf("missing data dir: err = %v", err)
	}
}

// TestUsersCommand manages accounts from the command line and signs in
// with them over HTTP.
func TestUsersCommand(t *testing.T) {
	dir := t.TempDir()
	m, _ := MustRunMain(t, dir, nil)
	url := m.HTTPServer.URL()
	users := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"users"}, args...), noEnv, strings.NewReader(stdin), &out, io.Discard)
		return out.String(), err
	}

	if _, err := users("correct horse battery\n", "add", "--data-dir", dir, "--password-stdin", "pastor.john"); err != nil {
		t.Fatal(err)
	}
	if status, _ := do(t, "POST", url+"/auth/login", "", `{"username":"pastor.john","password":"correct horse battery"}`); status != 200 {
		t.Fatalf("login new account: %d", status)
	}
	out, err := users("", "list", "--data-dir", dir)
	if err != nil || !strings.Contains(out, "pastor.john") || !strings.Contains(out, "admin") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if _, err := users("", "add", "--data-dir", dir, "pastor.john"); err == nil {
		t.Fatal("duplicate add succeeded")
	}
	out, err = users("", "passwd", "--data-dir", dir, "pastor.john")
	if err != nil {
		t.Fatal(err)
	}
	generated := out[strings.LastIndex(out, " ")+1 : len(out)-1]
	if status, _ := do(t, "POST", url+"/auth/login", "", `{"username":"pastor.john","password":"correct horse battery"}`); status != 401 {
		t.Fatalf("old password still works: %d", status)
	}
	if status, _ := do(t, "POST", url+"/auth/login", "", `{"username":"pastor.john","password":"`+generated+`"}`); status != 200 {
		t.Fatalf("generated password refused: %d", status)
	}
	token := mustToken(t, dir, "pastor.john")
	if _, err := users("", "remove", "--data-dir", dir, "pastor.john"); err != nil {
		t.Fatal(err)
	}
	if status, _ := do(t, "GET", url+"/sessions", token, ""); status != 401 {
		t.Fatalf("token of a removed account accepted: %d", status)
	}
	if _, err := users("", "remove", "--data-dir", dir, "pastor.john"); err == nil {
		t.Fatal("removing a missing account succeeded")
	}
	if _, err := users("short\n", "add", "--data-dir", dir, "--password-stdin", "deacon"); err == nil {
		t.Fatal("a 5-character password was accepted")
	}
}

// TestServe_AccountsBeforeFirstStart: accounts added with `users add`
// before the first serve are speakers and stay so; serve creates the
// admin account beside them, as on any first start.
func TestServe_AccountsBeforeFirstStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, name := range []string{"deacon", "pastor"} {
		if err := run(context.Background(), []string{"users", "add", "--data-dir", dir, name}, noEnv, nil, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	var stderr bytes.Buffer
	m, _ := MustRunMain(t, dir, nil, func(m *Main) { m.Stderr = &stderr })
	if !adminPassword.MatchString(stderr.String()) {
		t.Fatalf("no admin account created beside the speakers; stderr:\n%s", &stderr)
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"users", "list", "--data-dir", dir}, noEnv, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] {
		f := strings.Fields(l)
		got[f[0]] = f[1]
	}
	if want := map[string]string{"admin": "admin", "deacon": "speaker", "pastor": "speaker"}; !maps.Equal(got, want) {
		t.Fatalf("roles = %v, want %v", got, want)
	}

	// A restart with an admin there creates nothing.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	var stderr2 bytes.Buffer
	MustRunMain(t, dir, nil, func(m *Main) { m.Stderr = &stderr2 })
	if adminPassword.MatchString(stderr2.String()) {
		t.Fatalf("admin created again: %s", &stderr2)
	}
}

// TestUsersCommand_Roles gives accounts roles from the command line: the
// first-start account is the admin, new accounts are speakers unless
// --role says otherwise, `users role` changes a role, and the last admin
// can be neither demoted nor removed.
func TestUsersCommand_Roles(t *testing.T) {
	dir := t.TempDir()
	MustRunMain(t, dir, nil)
	users := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"users"}, args...), noEnv, strings.NewReader(""), &out, io.Discard)
		return out.String(), err
	}
	roles := func() map[string]string {
		t.Helper()
		out, err := users("list", "--data-dir", dir)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if h := strings.Fields(lines[0]); len(h) != 3 || h[1] != "ROLE" {
			t.Fatalf("list header %q, want NAME ROLE CREATED", lines[0])
		}
		got := map[string]string{}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			got[f[0]] = f[1]
		}
		return got
	}
	if _, err := users("add", "--data-dir", dir, "pastor"); err != nil {
		t.Fatal(err)
	}
	if _, err := users("add", "--data-dir", dir, "--role", "admin", "deacon"); err != nil {
		t.Fatal(err)
	}
	if got, want := roles(), map[string]string{"admin": "admin", "pastor": "speaker", "deacon": "admin"}; !maps.Equal(got, want) {
		t.Fatalf("roles = %v, want %v", got, want)
	}

	for _, step := range [][]string{{"role", "deacon", "speaker"}, {"role", "pastor", "admin"}, {"remove", "admin"}} {
		if _, err := users(append([]string{step[0], "--data-dir", dir}, step[1:]...)...); err != nil {
			t.Fatalf("%v: %v", step, err)
		}
	}
	if got, want := roles(), map[string]string{"pastor": "admin", "deacon": "speaker"}; !maps.Equal(got, want) {
		t.Fatalf("roles = %v, want %v", got, want)
	}
	// pastor is the last admin now.
	for _, step := range [][]string{{"role", "pastor", "speaker"}, {"remove", "pastor"}} {
		_, err := users(append([]string{step[0], "--data-dir", dir}, step[1:]...)...)
		if err == nil || !strings.Contains(err.Error(), "last admin") {
			t.Fatalf("%v: err = %v, want the last admin kept", step, err)
		}
	}
	for _, args := range [][]string{
		{"role", "--data-dir", dir, "pastor"},
		{"role", "--data-dir", dir, "pastor", "root"},
		{"add", "--data-dir", dir, "--role", "root", "linus"},
		{"passwd", "--data-dir", dir, "--role", "admin", "deacon"},
	} {
		if _, err := users(args...); exitCode(err) != 2 {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	if _, err := users("role", "--data-dir", dir, "nobody", "admin"); err == nil {
		t.Fatal("changed the role of a missing account")
	}
	if got, want := roles(), map[string]string{"pastor": "admin", "deacon": "speaker"}; !maps.Equal(got, want) {
		t.Fatalf("after refused changes roles = %v, want %v", got, want)
	}
}

func TestRun_Help(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"serve", "--help"}, noEnv, nil, &out, io.Discard)
	if exitCode(err) != 0 || !strings.Contains(out.String(), "MAX_LISTENERS_PER_SESSION") {
		t.Fatalf("serve --help: exit %d, stdout:\n%s", exitCode(err), out.String())
	}
}

func TestRun_Usage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"users"}, {"users", "rename", "x"}} {
		err := run(context.Background(), args, noEnv, nil, io.Discard, io.Discard)
		if exitCode(err) != 2 {
			t.Errorf("%v: err = %v, exit %d", args, err, exitCode(err))
		}
	}
}

func noEnv(string) string { return "" }

// mustToken mints a token with the token command and takes its last word.
func mustToken(tb testing.TB, dir, user string) string {
	tb.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "--data-dir", dir, "--user", user, "--ttl", "10m"}, noEnv, nil, &out, io.Discard); err != nil {
		tb.Fatal(err)
	}
	words := strings.Fields(out.String())
	return words[len(words)-1]
}

// waitFor polls cond until it holds or ten seconds pass.
func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServe_Pages checks that the binary serves the web pages beside the API.
func TestServe_Pages(t *testing.T) {
	m, _ := MustRunMain(t, t.TempDir(), map[string]string{"PUBLIC_URL": "https://live.example.org",
		"SIGN_IN_LINKS": "Sign in with Cognito|https://auth.example.org/oauth2/authorize?client_id=x&response_type=token"})
	// The speaker page offers the configured OIDC sign-in.
	speak, err := http.Get(m.HTTPServer.URL() + "/speak")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(speak.Body)
	speak.Body.Close()
	if !strings.Contains(string(page), "Sign in with Cognito") || !strings.Contains(string(page), "auth.example.org") {
		t.Fatalf("/speak does not offer the configured sign-in link")
	}
	for _, path := range []string{"/", "/speak", "/listen/golden-eagle-427"} {
		resp, err := http.Get(m.HTTPServer.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	resp, err := http.Get(m.HTTPServer.URL() + "/qr/golden-eagle-427.svg")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("qr: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestOIDCConfigs_Duplicates: issuers must differ in issuer URL (tokens are
// routed by it) and in name (user IDs are "<name>:<sub>").
func TestOIDCConfigs_Duplicates(t *testing.T) {
	spec := func(name, iss string) string {
		return "name=" + name + ",issuer=" + iss + ",jwks=" + iss + "/keys,audience=a"
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"OK", Config{OIDCIssuers: []string{spec("corp", "https://a.example"), spec("partner", "https://b.example")}}, ""},
		{"ErrSameIssuer", Config{OIDCIssuers: []string{spec("corp", "https://a.example"), spec("partner", "https://a.example")}}, "same issuer URL"},
		{"ErrSameName", Config{OIDCIssuers: []string{spec("corp", "https://a.example"), spec("corp", "https://b.example")}}, "named corp"},
		{"ErrNamedCognito", Config{OIDCIssuers: []string{spec("cognito", "https://a.example")}, CognitoRegion: "eu-west-1", CognitoPool: "eu-west-1_abc", CognitoClient: "c"}, "named cognito"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := oidcConfigs(&tc.cfg)
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
}
