package buildinfo_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pentecost/pentecost/buildinfo"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := func(rev, when, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: when}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "2d34203abcdef0123456789abcdef0123456789a"
	for _, tc := range []struct {
		name            string
		bi              *debug.BuildInfo
		version, commit string
		want            buildinfo.Info
	}{
		{"OKGoInstall", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}}, "", "",
			buildinfo.Info{Version: "v1.2.3", Commit: "unknown", GoVersion: "go1.26.8"}},
		{"OKCheckout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20251206101400-2d34203abcde"},
			Settings: vcs(rev, "2025-12-06T10:14:00Z", "false")}, "", "",
			buildinfo.Info{Version: "v0.0.0-20251206101400-2d34203abcde", Commit: rev, CommitTime: time.Date(2025, 12, 6, 10, 14, 0, 0, time.UTC), GoVersion: "go1.26.8"}},
		{"OKDirty", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: vcs(rev, "2025-12-06T10:14:00Z", "true")}, "", "",
			buildinfo.Info{Version: "devel", Commit: rev + "-dirty", CommitTime: time.Date(2025, 12, 6, 10, 14, 0, 0, time.UTC), GoVersion: "go1.26.8"}},
		{"OKLinkedVersionWins", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20251206101400-2d34203abcde"},
			Settings: vcs(rev, "2025-12-06T10:14:00Z", "false")}, "v1.3.0", "ffff",
			buildinfo.Info{Version: "v1.3.0", Commit: rev, CommitTime: time.Date(2025, 12, 6, 10, 14, 0, 0, time.UTC), GoVersion: "go1.26.8"}},
		{"OKLinkedCommitWithoutVCS", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "", rev,
			buildinfo.Info{Version: "devel", Commit: rev, GoVersion: "go1.26.8"}},
		{"OKNothing", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "", "",
			buildinfo.Info{Version: "devel", Commit: "unknown", GoVersion: "go1.26.8"}},
		{"OKNoBuildInfo", nil, "v2.0.0", "",
			buildinfo.Info{Version: "v2.0.0", Commit: "unknown", GoVersion: runtime.Version()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			if got := buildinfo.FromBuildInfo(tc.bi, tc.version, tc.commit); got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestInfo_String(t *testing.T) {
	i := buildinfo.Info{Version: "v1.2.3", Commit: "abc-dirty", CommitTime: time.Date(2025, 12, 6, 10, 14, 0, 0, time.UTC),
		GoVersion: "go1.26.8", Platform: "linux/arm64"}
	want := "pentecost v1.2.3\ncommit       abc-dirty\ncommit time  2025-12-06T10:14:00Z\ngo           go1.26.8\nplatform     linux/arm64\n"
	if got := i.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	i.CommitTime = time.Time{}
	if got := i.String(); !strings.Contains(got, "commit time  unknown\n") {
		t.Fatalf("no commit time: %s", got)
	}
}

func TestInfo_Collector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildinfo.Info{Version: "v1.2.3", Commit: "abc", GoVersion: "go1.26.8"}.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "pentecost_build_info" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v", mfs)
	}
	m := mfs[0].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if m.GetGauge().GetValue() != 1 || len(labels) != 3 || labels["version"] != "v1.2.3" || labels["commit"] != "abc" || labels["goversion"] != "go1.26.8" {
		t.Fatalf("metric %v", m)
	}
}

// TestRead_Binary builds a program that prints Read() the way a release is
// built, and checks it against what the go command recorded in the binary:
// the version given with -X, and the commit go version -m shows (none in
// a linked git worktree or outside a checkout).
func TestRead_Binary(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the test program: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "printinfo")
	for _, args := range [][]string{
		{"build", "-buildvcs=auto", "-o", bin, "./testdata/printinfo"},
		{"build", "-buildvcs=auto", "-ldflags", "-X github.com/pentecost/pentecost/buildinfo.Version=v9.8.7-test", "-o", bin, "./testdata/printinfo"},
	} {
		if out, err := exec.Command(gobin, args...).CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		out, err := exec.Command(bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		meta, err := exec.Command(gobin, "version", "-m", bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		// What the go command recorded, as go version -m lists it.
		recorded := map[string]string{}
		for _, line := range strings.Split(string(meta), "\n") {
			f := strings.Split(strings.TrimSpace(line), "\t")
			switch {
			case len(f) >= 3 && f[0] == "mod":
				recorded["mod"] = f[2]
			case len(f) == 2 && f[0] == "build":
				k, v, _ := strings.Cut(f[1], "=")
				recorded[k] = v
			}
		}
		wantVersion := "devel"
		if strings.Contains(strings.Join(args, " "), "Version=") {
			wantVersion = "v9.8.7-test"
		} else if v := recorded["mod"]; v != "" && v != "(devel)" {
			wantVersion = v
		}
		wantCommit := "unknown"
		if rev := recorded["vcs.revision"]; rev != "" {
			wantCommit = rev
			if recorded["vcs.modified"] == "true" {
				wantCommit += "-dirty"
			}
		}
		lines := strings.Split(string(out), "\n")
		if len(lines) < 5 || lines[0] != "pentecost "+wantVersion || lines[1] != "commit       "+wantCommit ||
			lines[3] != "go           "+runtime.Version() || lines[4] != "platform     "+runtime.GOOS+"/"+runtime.GOARCH {
			t.Fatalf("go %s printed\n%s\nwant version %s, commit %s; go version -m says\n%s", strings.Join(args, " "), out, wantVersion, wantCommit, meta)
		}
	}
}
