// Package profdiff merges stored pprof profiles and compares two sets of them: the
// engine behind `kprof profiles merge`, `kprof profiles diff` and the UI's merge and
// diff views. It reads files (a profile, or every profile of one type below a
// directory, as the fs store and local mode lay them out) and the entries of a
// store's index (internal/index: a directory or an S3 prefix), one at a time and each
// under a size limit, and finds the default base of a threshold capture.
package profdiff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/fs"
)

// Input is one profile to read: a file, or an entry of a store's index.
type Input struct {
	// Path is the file; for an index entry, its location (file path or s3://bucket/key),
	// which names it in messages.
	Path string
	// Type is the profile type (cpu, heap, ...) from the sidecar, the index or the file
	// name, "" when unknown.
	Type string
	// Duration is the CPU profile length from the sidecar or the index, 0 when unknown
	// (the profile's own duration_nanos is used then).
	Duration time.Duration
	// Entry is the index entry the profile is read from, nil for a file.
	Entry *index.Entry

	store   index.Index // reads Entry
	sidecar bool        // a sidecar describes it
}

// EntryInput is the input that reads e from x (Index.Open, under the merge's size limit).
func EntryInput(x index.Index, e index.Entry) Input {
	loc := e.Location
	if loc == "" {
		loc = x.String() + ": " + e.ID
	}
	return Input{Path: loc, Type: e.Type, Duration: e.Duration, Entry: &e, store: x}
}

// SelectIndex returns the inputs of the entries of x that f selects, oldest first.
// Without f.Type, a selection of profiles of more than one type is an error that
// names the types. Selecting nothing is an error naming the store and the filter.
func SelectIndex(ctx context.Context, x index.Index, f index.Filter) ([]Input, error) {
	es, err := x.List(ctx, f)
	if err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, fmt.Errorf("%w: no profiles in %s match %s", ErrNoMatch, x, f)
	}
	if f.Type == "" {
		if types := typesOf(es); len(types) > 1 {
			return nil, &MixedTypesError{Count: len(es), Store: x.String(), Filter: f, Types: types}
		}
	}
	out := make([]Input, len(es))
	for i, e := range es {
		out[i] = EntryInput(x, e)
	}
	return out, nil
}

// ErrNoMatch is SelectIndex selecting nothing.
var ErrNoMatch = errors.New("nothing selected")

// MixedTypesError is a selection of profiles of several types without a type.
type MixedTypesError struct {
	Count  int
	Store  string
	Filter index.Filter
	Types  []string // sorted
}

func (e *MixedTypesError) Error() string {
	return fmt.Sprintf("the %d profiles in %s that match %s are of %d types (%s): choose one with type",
		e.Count, e.Store, e.Filter, len(e.Types), strings.Join(e.Types, ", "))
}

// TypesOf lists the known types of es, sorted, each once.
func TypesOf(es []index.Entry) []string { return typesOf(es) }

// typesOf lists the known types of es, sorted, each once.
func typesOf(es []index.Entry) []string {
	var types []string
	for _, e := range es {
		if e.Type != "" && !slices.Contains(types, e.Type) {
			types = append(types, e.Type)
		}
	}
	sort.Strings(types)
	return types
}

// profileSuffixes end the names of profile files without a sidecar that a directory contributes.
var profileSuffixes = []string{".pb.gz", ".pb", ".pprof", ".prof"}

func profileName(name string) bool {
	return slices.ContainsFunc(profileSuffixes, func(s string) bool { return strings.HasSuffix(name, s) })
}

// Select returns the inputs that paths name: a file is taken as it is (its type must
// be typ when typ is set and the type is known); a directory contributes every
// profile file below it of type typ: each file with a sidecar and each named *.pb.gz,
// *.pb, *.pprof or *.prof (never sidecars or the stores' temporary .tmp-* files).
// The type of a file comes from its sidecar (FILE.json, see storage.Meta), else from
// a name ending in _TYPE.pb.gz (the default key template), else, for a file in a
// directory (such as the agent's pprof-CONFIG-TIME.pb.gz), from its sample types (see
// TypeOf), which reads it under the limit maxFileBytes (DefaultMaxFileBytes when 0).
// Without typ, a directory whose files have more than one type is an error listing them.
func Select(paths []string, typ string, maxFileBytes int64) ([]Input, error) {
	if maxFileBytes <= 0 {
		maxFileBytes = DefaultMaxFileBytes
	}
	var out []Input
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("profile input: %w", err)
		}
		var ins []Input
		if st.IsDir() {
			ins, err = selectDir(p, typ, maxFileBytes)
		} else {
			ins, err = selectFile(p, typ)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ins...)
	}
	if len(out) == 0 {
		return nil, errors.New("no profiles selected")
	}
	return out, nil
}

// selectFile is the input of a file named on its own.
func selectFile(p, typ string) ([]Input, error) {
	in, err := describe(p)
	if err != nil {
		return nil, err
	}
	if typ != "" && in.Type != "" && in.Type != typ {
		return nil, fmt.Errorf("%s: a %s profile, not %s (--type)", p, in.Type, typ)
	}
	return []Input{in}, nil
}

// selectDir is the inputs of type typ below the directory p; without typ, its
// profiles must all be of one type. A directory without any is an error.
func selectDir(p, typ string, maxFileBytes int64) ([]Input, error) {
	found, err := profilesBelow(p, maxFileBytes)
	if err != nil {
		return nil, err
	}
	if typ == "" {
		var types []string
		for _, in := range found {
			if in.Type != "" && !slices.Contains(types, in.Type) {
				types = append(types, in.Type)
			}
		}
		if len(types) > 1 {
			sort.Strings(types)
			return nil, fmt.Errorf("%s holds profiles of %d types (%s): choose one with --type", p, len(types), strings.Join(types, ", "))
		}
	}
	var out []Input
	for _, in := range found {
		if typ == "" || in.Type == typ {
			out = append(out, in)
		}
	}
	if len(out) == 0 {
		what := "no profile files"
		if typ != "" {
			what = "no " + typ + " profile files"
		}
		return nil, fmt.Errorf("%s: %s", p, what)
	}
	return out, nil
}

// profilesBelow describes every profile file below the directory dir, each with
// a type: a file whose sidecar and name do not say it is read for its sample types.
func profilesBelow(dir string, maxFileBytes int64) ([]Input, error) {
	var found []Input
	err := filepath.WalkDir(dir, func(path string, d iofs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("list %s: %w", path, err)
		}
		name := d.Name()
		if d.IsDir() || strings.HasSuffix(name, fs.MetaSuffix) || strings.HasPrefix(name, ".tmp-") ||
			!d.Type().IsRegular() {
			return nil
		}
		in, err := describe(path)
		if err != nil {
			return err
		}
		if !in.sidecar && !profileName(name) {
			return nil // not a profile of a store: a README, an editor's backup
		}
		if in.Type == "" {
			p, err := ReadProfile(path, maxFileBytes)
			if err != nil {
				return err
			}
			in.Type = TypeOf(p)
		}
		found = append(found, in)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

// maxSidecarBytes bounds the read of a sidecar; real ones are well under 1 KiB.
const maxSidecarBytes = 64 << 10

// describe reads what the sidecar and the name of path say about it.
func describe(path string) (Input, error) {
	in := Input{Path: path}
	b, err := readLimited(path+fs.MetaSuffix, maxSidecarBytes)
	switch {
	case errors.Is(err, iofs.ErrNotExist):
	case err != nil:
		return Input{}, fmt.Errorf("sidecar of %s: %w", path, err)
	default:
		var m storage.Meta
		if err := json.Unmarshal(b, &m); err != nil {
			return Input{}, fmt.Errorf("sidecar %s%s: %w", path, fs.MetaSuffix, err)
		}
		in.Type, in.Duration, in.sidecar = m.Type, m.Duration, true
	}
	if in.Type == "" {
		in.Type = typeFromName(filepath.Base(path))
	}
	return in, nil
}

// knownTypes are the types kprof captures, as they end file names of the default key template.
var knownTypes = []string{"cpu", "heap", "allocs", "goroutine", "mutex", "block", "threadcreate"}

func typeFromName(name string) string {
	base, ok := strings.CutSuffix(name, ".pb.gz")
	if !ok {
		return ""
	}
	for _, t := range knownTypes {
		if strings.HasSuffix(base, "_"+t) {
			return t
		}
	}
	return ""
}

// TypeOf names the type of a profile from its sample types, for files with neither a
// sidecar nor a typed name. Go's heap and allocs profiles have the same sample types
// (only the default differs), as have mutex and block; those are told apart by the
// default sample type (allocs) and the period type where they can be, else the first
// of the pair is returned.
func TypeOf(p *profile.Profile) string {
	has := func(typ, unit string) bool {
		return slices.ContainsFunc(p.SampleType, func(s *profile.ValueType) bool { return s.Type == typ && s.Unit == unit })
	}
	switch {
	case has("cpu", "nanoseconds"):
		return "cpu"
	case has("alloc_space", "bytes") || has("inuse_space", "bytes"):
		if p.DefaultSampleType == "alloc_space" || p.DefaultSampleType == "alloc_objects" {
			return "allocs"
		}
		return "heap"
	case has("goroutine", "count"):
		return "goroutine"
	case has("threadcreate", "count"):
		return "threadcreate"
	case has("contentions", "count") || has("delay", "nanoseconds"):
		return "mutex"
	}
	return ""
}
