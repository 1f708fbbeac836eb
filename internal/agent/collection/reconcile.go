package collection

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
	r := reconciliation{
		t:       t,
		bad:     map[string]error{},
		next:    map[string]CollectionConfig{},
		from:    map[string]string{},
		held:    map[string]CollectionConfig{},
		ignored: map[string]CollectionConfig{},
	}
	var good []fileResult
	for _, f := range files {
		if f.err != nil {
			r.bad[f.path] = f.err
		} else {
			good = append(good, f)
		}
	}
	r.holdRejected()
	t.runningFirst(good)
	for _, f := range good {
		r.take(f)
	}
	for name, cur := range t.current {
		if _, ok := r.next[name]; !ok {
			r.removed = append(r.removed, Change{Kind: Removed, Config: cur})
		}
	}
	rejected, reported := r.rejections()

	t.current, t.reported, t.ignored = r.next, reported, r.ignored
	byName := func(a, b Change) int { return cmp.Compare(a.Config.Name, b.Config.Name) }
	slices.SortFunc(r.removed, byName)
	slices.SortFunc(r.updated, byName)
	slices.SortFunc(r.added, byName)
	return slices.Concat(r.removed, r.updated, r.added, rejected)
}

// reconciliation is the work of one reconcile: what will run and the changes
// that lead there.
type reconciliation struct {
	t    *tracker
	bad  map[string]error            // file → why it is rejected
	next map[string]CollectionConfig // name → what runs after this scan
	from map[string]string           // name → file it is held for or taken from
	held map[string]CollectionConfig // rejected file → its last good config, kept running
	// ignored holds the files changed without a higher version.
	ignored                 map[string]CollectionConfig
	removed, updated, added []Change
}

// holdRejected keeps the last good config of a rejected file running.
func (r *reconciliation) holdRejected() {
	for name, cur := range r.t.current {
		if _, ok := r.bad[cur.Source]; ok {
			r.next[name], r.from[name] = cur, cur.Source
			r.held[cur.Source] = cur
		}
	}
}

// runningFirst orders good so that the file a running config came from keeps
// its name against a newcomer; otherwise the first file by path wins.
func (t *tracker) runningFirst(good []fileResult) {
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
}

// take decides what the good file f does to its config's name: add it, update
// it (a higher version), keep it (the same spec), or nothing (a change without a
// higher version, warned about once, or a name another file holds: rejected).
func (r *reconciliation) take(f fileResult) {
	c := f.cfg
	if other, dup := r.from[c.Name]; dup {
		r.bad[f.path] = &FieldError{File: f.path, Field: "name",
			Err: fmt.Errorf("duplicate name %q: %s has it too; keeping %s", c.Name, other, other)}
		return
	}
	r.from[c.Name] = f.path
	cur, running := r.t.current[c.Name]
	switch {
	case !running:
		r.next[c.Name] = c
		r.added = append(r.added, Change{Kind: Added, Config: c})
	case c.Version > cur.Version:
		r.next[c.Name] = c
		r.updated = append(r.updated, Change{Kind: Updated, Config: c, Previous: cur})
	case sameSpec(c, cur):
		r.next[c.Name] = c // unchanged (the file may have been renamed)
	default:
		r.next[c.Name] = cur
		r.ignored[f.path] = c
		if r.t.ignored[f.path] != c {
			r.t.log.Warn("config changed without a higher version; keeping the running one",
				"file", f.path, "name", c.Name, "version", c.Version, "running_version", cur.Version, "running_file", cur.Source)
		}
	}
}

// rejections are the Rejected changes of the bad files whose error is new, by
// file, and the errors of every bad file (what reconcile reported).
func (r *reconciliation) rejections() (rejected []Change, reported map[string]string) {
	reported = map[string]string{}
	for _, path := range slices.Sorted(maps.Keys(r.bad)) {
		text := r.bad[path].Error()
		reported[path] = text
		if r.t.reported[path] != text {
			rejected = append(rejected, Change{Kind: Rejected, Config: r.held[path], Err: r.bad[path]})
		}
	}
	return rejected, reported
}
