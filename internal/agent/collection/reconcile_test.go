package collection

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"
)

func cfgAt(name string, version int64, source string) CollectionConfig {
	return CollectionConfig{Name: name, Version: version, Event: "cpu-clock", SamplePeriod: 10000000, Interval: 10 * time.Second, Source: source}
}

func ok(c CollectionConfig) fileResult { return fileResult{path: c.Source, cfg: c} }

func corrupt(path string) fileResult {
	return fileResult{path: path, err: &FieldError{File: path, Field: "data", Err: errors.New("not valid base64")}}
}

func summarize(changes []Change) []string {
	var out []string
	for _, ch := range changes {
		c := ch.Config
		s := fmt.Sprintf("%s %s@%d %s", ch.Kind, c.Name, c.Version, c.Source)
		if ch.Kind == Updated {
			s += fmt.Sprintf(" (was @%d)", ch.Previous.Version)
		}
		if ch.Kind == Rejected {
			s = fmt.Sprintf("rejected (%v) keeping %s@%d", ch.Err, c.Name, c.Version)
		}
		out = append(out, s)
	}
	return out
}

func TestTrackerTurnsScansIntoChanges(t *testing.T) {
	withPeriod := func(c CollectionConfig, p uint64) CollectionConfig { c.SamplePeriod = p; return c }
	type scan struct {
		files   []fileResult
		dirErr  error
		want    []string
		current []string // name@version source after the scan
	}
	for _, tc := range []struct {
		name  string
		scans []scan
	}{
		{"a new name is added and an unchanged rescan changes nothing", []scan{
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/a.yaml"))}, want: []string{"added cpu@1 d/a.yaml"}, current: []string{"cpu@1 d/a.yaml"}},
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/a.yaml"))}, current: []string{"cpu@1 d/a.yaml"}},
		}},
		{"a higher version updates, a lower or equal one with other content is ignored", []scan{
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/a.yaml"))}, want: []string{"added cpu@1 d/a.yaml"}},
			{files: []fileResult{ok(cfgAt("cpu", 2, "d/a.yaml"))}, want: []string{"updated cpu@2 d/a.yaml (was @1)"}, current: []string{"cpu@2 d/a.yaml"}},
			{files: []fileResult{ok(withPeriod(cfgAt("cpu", 2, "d/a.yaml"), 5))}, current: []string{"cpu@2 d/a.yaml"}},
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/a.yaml"))}, current: []string{"cpu@2 d/a.yaml"}},
		}},
		{"a deleted file removes its name", []scan{
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/a.yaml")), ok(cfgAt("mem", 1, "d/b.yaml"))}, want: []string{"added cpu@1 d/a.yaml", "added mem@1 d/b.yaml"}},
			{files: []fileResult{ok(cfgAt("mem", 1, "d/b.yaml"))}, want: []string{"removed cpu@1 d/a.yaml"}, current: []string{"mem@1 d/b.yaml"}},
		}},
		{"a corrupt file keeps its last good config, is reported once, and again after it was fixed", []scan{
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/a.yaml"))}, want: []string{"added cpu@1 d/a.yaml"}},
			{files: []fileResult{corrupt("d/a.yaml")}, want: []string{"rejected (d/a.yaml: data: not valid base64) keeping cpu@1"}, current: []string{"cpu@1 d/a.yaml"}},
			{files: []fileResult{corrupt("d/a.yaml")}, current: []string{"cpu@1 d/a.yaml"}},
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/a.yaml"))}, current: []string{"cpu@1 d/a.yaml"}},
			{files: []fileResult{corrupt("d/a.yaml")}, want: []string{"rejected (d/a.yaml: data: not valid base64) keeping cpu@1"}},
			{files: nil, want: []string{"removed cpu@1 d/a.yaml"}, current: []string{}},
		}},
		{"a corrupt new file is rejected with nothing to keep", []scan{
			{files: []fileResult{corrupt("d/a.yaml")}, want: []string{"rejected (d/a.yaml: data: not valid base64) keeping @0"}, current: []string{}},
		}},
		{"a second file with a running name is rejected naming both, even when it sorts first", []scan{
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/b.yaml"))}, want: []string{"added cpu@1 d/b.yaml"}},
			{files: []fileResult{ok(cfgAt("cpu", 5, "d/a.yaml")), ok(cfgAt("cpu", 1, "d/b.yaml"))},
				want:    []string{`rejected (d/a.yaml: name: duplicate name "cpu": d/b.yaml has it too; keeping d/b.yaml) keeping @0`},
				current: []string{"cpu@1 d/b.yaml"}},
		}},
		{"of two new files with one name the first by path wins", []scan{
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/a.yaml")), ok(cfgAt("cpu", 2, "d/b.yaml"))},
				want: []string{"added cpu@1 d/a.yaml", `rejected (d/b.yaml: name: duplicate name "cpu": d/a.yaml has it too; keeping d/a.yaml) keeping @0`}},
		}},
		{"a renamed file with the same config changes nothing but its source", []scan{
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/a.yaml"))}, want: []string{"added cpu@1 d/a.yaml"}},
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/z.yaml"))}, current: []string{"cpu@1 d/z.yaml"}},
		}},
		{"a file whose name changes removes the old name and adds the new", []scan{
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/a.yaml"))}, want: []string{"added cpu@1 d/a.yaml"}},
			{files: []fileResult{ok(cfgAt("cpu2", 1, "d/a.yaml"))}, want: []string{"removed cpu@1 d/a.yaml", "added cpu2@1 d/a.yaml"}},
		}},
		{"an unreadable directory is reported once and changes nothing", []scan{
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/a.yaml"))}, want: []string{"added cpu@1 d/a.yaml"}},
			{dirErr: errors.New("permission denied"), want: []string{"rejected (read config dir d: permission denied) keeping @0"}, current: []string{"cpu@1 d/a.yaml"}},
			{dirErr: errors.New("permission denied"), current: []string{"cpu@1 d/a.yaml"}},
			{files: []fileResult{ok(cfgAt("cpu", 1, "d/a.yaml"))}, current: []string{"cpu@1 d/a.yaml"}},
			{dirErr: errors.New("permission denied"), want: []string{"rejected (read config dir d: permission denied) keeping @0"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker(slog.New(slog.DiscardHandler))
			for i, s := range tc.scans {
				var changes []Change
				if s.dirErr != nil {
					changes = tr.dirFailed("d", s.dirErr)
				} else {
					changes = tr.reconcile(s.files)
				}
				if got := summarize(changes); !slices.Equal(got, s.want) {
					t.Errorf("scan %d: changes\n got %q\nwant %q", i, got, s.want)
				}
				if s.current == nil {
					continue
				}
				var cur []string
				for _, c := range tr.current {
					s := fmt.Sprintf("%s@%d %s", c.Name, c.Version, c.Source)
					if c.SamplePeriod != 10000000 {
						s += fmt.Sprintf(" period=%d", c.SamplePeriod)
					}
					cur = append(cur, s)
				}
				slices.Sort(cur)
				if !slices.Equal(cur, s.current) && !(len(cur) == 0 && len(s.current) == 0) {
					t.Errorf("scan %d: current %q, want %q", i, cur, s.current)
				}
			}
		})
	}
}
