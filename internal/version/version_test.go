package version

import (
	"runtime/debug"
	"testing"
)

func TestGet(t *testing.T) {
	vcs := func(settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings}, true
		}
	}
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123456789abcdef0123"}
	at := debug.BuildSetting{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	for _, tc := range []struct {
		name                  string
		version, commit, date string
		read                  func() (*debug.BuildInfo, bool)
		want                  string
	}{
		{"stamped values win over the build info", "v0.2.0", "abc1234", "2026-12-07T10:00:00Z", vcs(rev, at, dirty),
			"kprof v0.2.0 (commit abc1234, built 2026-12-07T10:00:00Z)"},
		{"an unstamped build reports the VCS revision and time, shortened and marked dirty", "", "", "", vcs(rev, at, dirty),
			"kprof devel (commit 0123456789ab-dirty, built 2026-01-02T03:04:05Z)"},
		{"a build without build info says unknown", "", "", "", func() (*debug.BuildInfo, bool) { return nil, false },
			"kprof devel (commit unknown, built unknown)"},
		{"a go install'd module version is used when not stamped", "", "", "", func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: "v0.3.1"}}, true
		}, "kprof v0.3.1 (commit unknown, built unknown)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			Version, Commit, Date = tc.version, tc.commit, tc.date
			t.Cleanup(func() { Version, Commit, Date = "", "", "" })
			if got := get(tc.read).String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
