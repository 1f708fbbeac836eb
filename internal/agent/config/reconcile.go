package config

import (
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"slices"
)

// ChangeKind says what a Change asks of the collectors.
type ChangeKind int

const (
	// Added: a new name; start its collector.
	Added ChangeKind = iota + 1
	// Updated: a higher version of a running name; restart its collector.
	Updated
	// Removed: the name's file is gone; stop its collector.
	Removed
	// Rejected: a file could not be read, parsed or validated, or it repeats a
	// name another file has. Nothing starts or stops: the last good config of
	// that file, if any, keeps running.
	Rejected
)

func (k ChangeKind) String() string {
	switch k {
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Removed:
		return "removed"
	case Rejected:
		return "rejected"
	}
	return fmt.Sprintf("ChangeKind(%d)", int(k))
}

// Change is one thing that changed in the config directory.
type Change struct {
	Kind ChangeKind
	// Config is, for Added and Updated, the config to run; for Removed, the one
	// that stops; for Rejected, the last good config that keeps running for the
	// rejected file (zero when there is none).
	Config CollectionConfig
	// Previous is, for Updated, the config being replaced.
	Previous CollectionConfig
	// Err is, for Rejected, why: it names the file and, when the file was read,
	// the field (a *FieldError).
	Err error
}

// fileResult is one config file read and parsed in a scan.
type fileResult struct {
	path string
	cfg  CollectionConfig
	err  error // the file was rejected
}

// tracker turns successive scans of the directory into changes. It is used by
// one goroutine at a time.
type tracker struct {
	current  map[string]CollectionConfig // by name: what runs
	reported map[string]string           // by file path (or the dir): error text already reported
	ignored  map[string]CollectionConfig // by file path: a config not taken (version not higher), already warned about
	log      *slog.Logger
}

func newTracker(log *slog.Logger) *tracker {
	return &tracker{
		current:  map[string]CollectionConfig{},
		reported: map[string]string{},
		ignored:  map[string]CollectionConfig{},
		log:      log,
	}
}

// dirFailed reports a directory that could not be listed, once per distinct
// error; what runs is left as it is.
func (t *tracker) dirFailed(dir string, err error) []Change {
	err = fmt.Errorf("read config dir %s: %w", dir, err)
	if t.reported[dir] == err.Error() {
		return nil
	}
	t.reported[dir] = err.Error()
	return []Change{{Kind: Rejected, Err: err}}
}

// reconcile compares the files of one complete scan with what runs and returns
// the changes, in this order: Removed, Updated, Added (each by name), then
// Rejected (by file). A rejection is returned once until its text changes.
func (t *tracker) reconcile(files []fileResult) []Change {
	bad := map[string]error{}
	var good []fileResult
	for _, f := range files {
		if f.err != nil {
			bad[f.path] = f.err
		} else {
			good = append(good, f)
		}
	}

	next := map[string]CollectionConfig{}
	from := map[string]string{} // name → file it is held for or taken from
	held := map[string]CollectionConfig{}
	// A rejected file keeps its last good config running.
	for name, cur := range t.current {
		if _, ok := bad[cur.Source]; ok {
			next[name], from[name] = cur, cur.Source
			held[cur.Source] = cur
		}
	}
	// The file a running config came from keeps its name against a newcomer;
	// otherwise the first file by path wins.
	slices.SortStableFunc(good, func(a, b fileResult) int {
		aRuns := t.current[a.cfg.Name].Source == a.path
		bRuns := t.current[b.cfg.Name].Source == b.path
		switch {
		case aRuns && !bRuns:
			return -1
		case bRuns && !aRuns:
			return 1
		}
		return cmp.Compare(a.path, b.path)
	})

	var removed, updated, added []Change
	ignored := map[string]CollectionConfig{}
	for _, f := range good {
		c := f.cfg
		if other, dup := from[c.Name]; dup {
			bad[f.path] = &FieldError{File: f.path, Field: "name",
				Err: fmt.Errorf("duplicate name %q: %s has it too; keeping %s", c.Name, other, other)}
			continue
		}
		from[c.Name] = f.path
		cur, running := t.current[c.Name]
		switch {
		case !running:
			next[c.Name] = c
			added = append(added, Change{Kind: Added, Config: c})
		case c.Version > cur.Version:
			next[c.Name] = c
			updated = append(updated, Change{Kind: Updated, Config: c, Previous: cur})
		case sameSpec(c, cur):
			next[c.Name] = c // unchanged (the file may have been renamed)
		default:
			next[c.Name] = cur
			ignored[f.path] = c
			if t.ignored[f.path] != c {
				t.log.Warn("config changed without a higher version; keeping the running one",
					"file", f.path, "name", c.Name, "version", c.Version, "running_version", cur.Version, "running_file", cur.Source)
			}
		}
	}
	for name, cur := range t.current {
		if _, ok := next[name]; !ok {
			removed = append(removed, Change{Kind: Removed, Config: cur})
		}
	}

	var rejected []Change
	reported := map[string]string{}
	for _, path := range slices.Sorted(maps.Keys(bad)) {
		text := bad[path].Error()
		reported[path] = text
		if t.reported[path] != text {
			rejected = append(rejected, Change{Kind: Rejected, Config: held[path], Err: bad[path]})
		}
	}

	t.current, t.reported, t.ignored = next, reported, ignored
	byName := func(a, b Change) int { return cmp.Compare(a.Config.Name, b.Config.Name) }
	slices.SortFunc(removed, byName)
	slices.SortFunc(updated, byName)
	slices.SortFunc(added, byName)
	return slices.Concat(removed, updated, added, rejected)
}
