package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/pentecost/pentecost/buildinfo"
)

// runOut runs a command line in-process and returns its exit code and output.
func runOut(getenv func(string) string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), args, getenv, strings.NewReader(""), &out, &errOut); err != nil {
		return exitCode(err), out.String(), errOut.String()
	}
	return 0, out.String(), errOut.String()
}

var (
	flagLine   = regexp.MustCompile(`^  --[a-z0-9-]+( [A-Z]+)?$`)
	detailLine = regexp.MustCompile(`^      \S`)
)

// checkLayout checks that help is in the layout every command shares and
// returns each flag's block of text by flag name.
func checkLayout(t *testing.T, c *command, help string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(help, "\n"), "\n")
	if want := strings.TrimSpace("Usage: pentecost " + c.Name + " " + c.Args); lines[0] != want {
		t.Fatalf("first line %q, want %q", lines[0], want)
	}
	if len(lines) < 6 || lines[1] != "" || lines[2] != c.Summary || !strings.HasSuffix(c.Summary, ".") || lines[3] != "" {
		t.Fatalf("no one-sentence summary after the usage line:\n%s", help)
	}
	i := 4
	for i < len(lines) && lines[i] != "Flags:" {
		i++
	}
	if i == len(lines) || lines[i-1] != "" {
		t.Fatalf("no Flags: section after a blank line:\n%s", help)
	}
	blocks := map[string]string{}
	name := ""
	for _, line := range lines[i+1:] {
		// Only a word too long to wrap (an example) may go past the width.
		if len([]rune(line)) > helpWidth && len(strings.Fields(line)) > 1 {
			t.Errorf("line longer than %d: %q", helpWidth, line)
		}
		switch {
		case line == "  -h, --help":
			name = "help"
		case flagLine.MatchString(line):
			name = strings.Fields(line)[0][2:]
			if _, dup := blocks[name]; dup {
				t.Errorf("--%s listed twice", name)
			}
		case detailLine.MatchString(line) && name != "":
			blocks[name] += strings.TrimSpace(line) + "\n"
			continue
		default:
			t.Fatalf("line %q is not in the flag layout:\n%s", line, help)
		}
		if blocks[name] != "" {
			t.Fatalf("--%s has no description:\n%s", name, help)
		}
		blocks[name] = ""
	}
	for n, b := range blocks {
		if b == "" {
			t.Errorf("--%s has no description", n)
		}
	}
	if blocks["help"] != "print this help\n" {
		t.Errorf("the flags do not end with -h, --help:\n%s", help)
	}
	return blocks
}

// TestHelp checks that every command prints its help in the one layout, on
// stdout with exit 0 for --help, -h and `pentecost help NAME`, and on
// stderr with exit 2 for a flag it does not know.
func TestHelp(t *testing.T) {
	// A secret in the environment must not show up as a default.
	secretEnv := func(k string) string {
		if k == "PENTECOST_WORKER_CREDENTIAL" || k == "REDIS_URL" {
			return "redis://:hunter2@127.0.0.1:1"
		}
		return ""
	}
	for _, c := range commands {
		t.Run(c.Name, func(t *testing.T) {
			code, help, errOut := runOut(secretEnv, c.Name, "--help")
			if code != 0 || errOut != "" {
				t.Fatalf("--help: exit %d, stderr %q", code, errOut)
			}
			blocks := checkLayout(t, c, help)
			for flagName, env := range c.Env {
				if !regexp.MustCompile(`(?m)^env ` + env + `(,|$)`).MatchString(blocks[flagName]) {
					t.Errorf("--%s does not name %s:\n%s", flagName, env, blocks[flagName])
				}
			}
			if strings.Contains(help, "hunter2") {
				t.Errorf("help shows a value from the environment:\n%s", help)
			}
			for _, args := range [][]string{{c.Name, "-h"}, {"help", c.Name}} {
				if code, out, _ := runOut(noEnv, args...); code != 0 || out != help {
					t.Errorf("%v: exit %d, output differs from --help:\n%s", args, code, out)
				}
			}
			bad := []string{c.Name, "--no-such-flag"}
			if c == usersCommand {
				bad = []string{c.Name, "list", "--no-such-flag"}
			}
			code, out, errOut := runOut(noEnv, bad...)
			if code != 2 || out != "" || errOut != help {
				t.Fatalf("%v: exit %d, stdout %q, stderr:\n%s", bad, code, out, errOut)
			}
		})
	}
	t.Run("serve", func(t *testing.T) {
		_, help, _ := runOut(noEnv, "serve", "--help")
		blocks := checkLayout(t, serveCommand, help)
		for _, s := range settings {
			if !regexp.MustCompile(`(?m)^env ` + s.env + `(,|$)`).MatchString(blocks[s.flag]) {
				t.Errorf("--%s does not name %s", s.flag, s.env)
			}
		}
	})
	t.Run("commands", func(t *testing.T) {
		for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
			code, out, errOut := runOut(noEnv, args...)
			if code != 0 || errOut != "" || !strings.HasPrefix(out, "Usage: pentecost COMMAND") {
				t.Fatalf("%v: exit %d, stderr %q, stdout:\n%s", args, code, errOut, out)
			}
			for _, c := range commands {
				if !strings.Contains(out, "\n  "+c.Name+" ") || !strings.Contains(out, c.Summary) {
					t.Errorf("%v does not list %s", args, c.Name)
				}
			}
		}
		for _, args := range [][]string{nil, {"frobnicate"}, {"help", "frobnicate"}} {
			code, out, errOut := runOut(noEnv, args...)
			if code != 2 || out != "" || !strings.HasPrefix(errOut, "Usage: pentecost COMMAND") {
				t.Errorf("%v: exit %d, stdout %q, stderr:\n%s", args, code, out, errOut)
			}
		}
	})
}

// buildInfoLine is the pentecost_build_info sample /metrics must show.
func buildInfoLine() string {
	i := buildinfo.Read()
	return fmt.Sprintf("pentecost_build_info{commit=%q,goversion=%q,version=%q} 1\n", i.Commit, i.GoVersion, i.Version)
}

func TestServe_BuildInfoMetric(t *testing.T) {
	m, _ := MustRunMain(t, t.TempDir(), nil)
	resp, err := http.Get(m.HTTPServer.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), buildInfoLine()) {
		t.Fatalf("/metrics: %d, no %q in\n%.2000s", resp.StatusCode, buildInfoLine(), body)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errOut := runOut(noEnv, args...)
		if code != 0 || errOut != "" || out != buildinfo.Read().String() || !strings.HasPrefix(out, "pentecost ") {
			t.Fatalf("%v: exit %d, stderr %q, stdout:\n%s", args, code, errOut, out)
		}
	}
	if code, _, _ := runOut(noEnv, "version", "extra"); code != 2 {
		t.Fatalf("version extra: exit %d, want 2", code)
	}
}
