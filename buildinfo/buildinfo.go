// Package buildinfo says which build of Pentecost is running: the version,
// the commit it was built from and the Go toolchain, read from the build
// information the Go linker embeds. `pentecost version` prints it and the
// server and the worker export it as the pentecost_build_info metric.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Version, when set at link time, is the version this binary reports, over
// the one the go command records. Release builds set it with
//
//	go build -ldflags "-X github.com/pentecost/pentecost/buildinfo.Version=v1.2.3" ./cmd/pentecost
//
// It wins because since Go 1.24 a build from a checkout records a
// pseudo-version of the commit (v0.0.0-…), which would hide the release's
// name otherwise.
var Version string

// Commit, when set at link time, is the commit reported when the build
// recorded none: Go records it only when it finds the checkout's .git
// directory, which a container build without .git, -buildvcs=false or a
// linked git worktree (golang/go#58218) lack. Set it with
//
//	-ldflags "-X github.com/pentecost/pentecost/buildinfo.Commit=$(git rev-parse HEAD)"
var Commit string

// Info describes one build.
type Info struct {
	// Version is the -X Version when set, else the main module's version
	// (v1.2.3 from `go install …@v1.2.3`, or a pseudo-version stamped from
	// the checkout), else "devel".
	Version string
	// Commit is the VCS revision the binary was built from, with "-dirty"
	// when the tree had uncommitted changes; else the -X Commit; else
	// "unknown".
	Commit string
	// CommitTime is the revision's commit time; zero when not recorded.
	CommitTime time.Time
	// GoVersion is the toolchain that built the binary, e.g. go1.26.8.
	GoVersion string
	// Platform is GOOS/GOARCH, e.g. linux/arm64.
	Platform string
}

// Read returns the running binary's build information.
var Read = sync.OnceValue(func() Info {
	bi, _ := debug.ReadBuildInfo()
	return FromBuildInfo(bi, Version, Commit)
})

// FromBuildInfo builds an Info from the go command's build information
// (nil when the binary has none) and the version and commit given at link
// time ("" when not given).
func FromBuildInfo(bi *debug.BuildInfo, version, commit string) Info {
	i := Info{Version: "devel", Commit: "unknown", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if commit != "" {
		i.Commit = commit
	}
	if bi == nil {
		if version != "" {
			i.Version = version
		}
		return i
	}
	if bi.GoVersion != "" {
		i.GoVersion = bi.GoVersion
	}
	switch v := bi.Main.Version; {
	case version != "":
		i.Version = version
	case v != "" && v != "(devel)":
		i.Version = v
	}
	var revision string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			i.CommitTime, _ = time.Parse(time.RFC3339, s.Value)
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if revision != "" {
		i.Commit = revision
		if modified {
			i.Commit += "-dirty"
		}
	}
	return i
}

// String is what `pentecost version` prints: the version on the first line,
// then one field per line.
func (i Info) String() string {
	t := "unknown"
	if !i.CommitTime.IsZero() {
		t = i.CommitTime.UTC().Format(time.RFC3339)
	}
	return "pentecost " + i.Version + "\n" +
		"commit       " + i.Commit + "\n" +
		"commit time  " + t + "\n" +
		"go           " + i.GoVersion + "\n" +
		"platform     " + i.Platform + "\n"
}

// Collector returns the pentecost_build_info gauge: always 1, with the build
// in its labels, so that a dashboard can show which nodes run which build
// and a query can join on it.
func (i Info) Collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "pentecost_build_info",
		Help:        "Always 1; the labels say which build of Pentecost is running.",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit, "goversion": i.GoVersion},
	})
	g.Set(1)
	return g
}
