// Package version is kprof's build identity: the version, commit and build date
// that the Makefile and the Dockerfile stamp into the binary with
//
//	-ldflags "-X github.com/kprof/kprof/internal/version.Version=v0.1.0
//	          -X github.com/kprof/kprof/internal/version.Commit=abc1234
//	          -X github.com/kprof/kprof/internal/version.Date=2026-01-02T03:04:05Z"
//
// A binary built without them (go build, go install, go run) reports what the Go
// toolchain recorded: the module version and the VCS revision and time.
package version

import (
	"fmt"
	"runtime/debug"
)

// Stamped by -ldflags -X; empty when not stamped.
var (
	Version string
	Commit  string
	Date    string
)

// Info is the build identity of this binary.
type Info struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Date    string `json:"date"`
	// Modified is set when the build info says the work tree had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
}

// Get returns the stamped values, filled in from the build info recorded by the Go
// toolchain where they were not stamped, and "unknown" where neither has them.
func Get() Info { return get(debug.ReadBuildInfo) }

func get(read func() (*debug.BuildInfo, bool)) Info {
	i := Info{Version: Version, Commit: Commit, Date: Date}
	if bi, ok := read(); ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if i.Commit == "" {
					i.Commit = s.Value
				}
			case "vcs.time":
				if i.Date == "" {
					i.Date = s.Value
				}
			case "vcs.modified":
				i.Modified = s.Value == "true" && Commit == ""
			}
		}
	}
	if len(i.Commit) > 12 {
		i.Commit = i.Commit[:12]
	}
	if i.Version == "" {
		i.Version = "devel"
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	if i.Date == "" {
		i.Date = "unknown"
	}
	return i
}

// String is the one line `kprof version` prints:
// "kprof v0.1.0 (commit abc1234, built 2026-01-02T03:04:05Z)".
func (i Info) String() string {
	commit := i.Commit
	if i.Modified {
		commit += "-dirty"
	}
	return fmt.Sprintf("kprof %s (commit %s, built %s)", i.Version, commit, i.Date)
}
