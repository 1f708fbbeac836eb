package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/storage"
)

// fsIndex lists a directory written by the fs store (profiles with JSON sidecars)
// or the agent's pprof consumer. Every access goes through an os.Root, so neither an
// ID nor a symbolic link below the directory reaches outside it.
type fsIndex struct{ dir string }

func newFS(dir string) (*fsIndex, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("profile index: store %q: %w", dir, err)
	}
	return &fsIndex{dir: abs}, nil
}

func (x *fsIndex) String() string { return x.dir }

// agentName matches the agent's pprof files: pprof-CONFIG-YYYYMMDD-HHMMSS[-N].pb.gz.
var agentName = regexp.MustCompile(`^pprof-(.+)-(\d{8}-\d{6})(?:-\d+)?\.pb\.gz$`)

// profileSuffixes are the names of files listed without a sidecar.
var profileSuffixes = []string{".pb.gz", ".pprof", ".pb", ".prof"}

// List walks the directory. A file with a sidecar is listed with the sidecar's
// metadata; an agent file with what its name says; another profile file with what
// the default key layout says. A sidecar that cannot be read is an entry's Error.
func (x *fsIndex) List(ctx context.Context, f Filter) ([]Entry, error) {
	root, err := os.OpenRoot(x.dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, fmt.Errorf("list profiles: store directory %s does not exist (kprof run stores into ./profiles by default; name another with --store)", x.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("list profiles in %s: %w", x.dir, err)
	}
	defer root.Close()
	var out []Entry
	err = iofs.WalkDir(root.FS(), ".", func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("list profiles in %s: %w", x.dir, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != "." && strings.HasPrefix(name, ".") {
				return iofs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".json") {
			return nil
		}
		e, ok := x.entry(root, p, d)
		if ok && f.Match(e) {
			out = append(out, withIDCheck(e))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortEntries(out)
	return out, nil
}

// Stat describes the file id as List does, reading only its sidecar.
func (x *fsIndex) Stat(ctx context.Context, id string) (Entry, error) {
	if err := CheckID(id); err != nil {
		return Entry{}, err
	}
	if err := ctx.Err(); err != nil {
		return Entry{}, err
	}
	what := fmt.Sprintf("profile %s in %s", id, x.dir)
	root, err := os.OpenRoot(x.dir)
	if err != nil {
		return Entry{}, fmt.Errorf("stat %s: %w", what, err)
	}
	defer root.Close()
	info, err := root.Lstat(id)
	if errors.Is(err, iofs.ErrNotExist) {
		return Entry{}, fmt.Errorf("stat %s: %w", what, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("stat %s: %w", what, err)
	}
	if !info.Mode().IsRegular() {
		return Entry{}, fmt.Errorf("stat %s: %w: not a regular file", what, ErrNotFound)
	}
	e, ok := x.entry(root, id, iofs.FileInfoToDirEntry(info))
	if !ok {
		return Entry{}, fmt.Errorf("stat %s: %w: not a profile file", what, ErrNotFound)
	}
	return withIDCheck(e), nil
}

// entry describes the file p, or says it is not a profile.
func (x *fsIndex) entry(root *os.Root, p string, d iofs.DirEntry) (Entry, bool) {
	e := Entry{ID: p, Location: filepath.Join(x.dir, filepath.FromSlash(p))}
	if info, err := d.Info(); err == nil {
		e.Size = info.Size()
	}
	meta, err := readSidecar(root, p+".json")
	switch {
	case err == nil:
		e.Source = "sidecar"
		fromMeta(&e, meta)
		return e, true
	case !errors.Is(err, iofs.ErrNotExist):
		e.Source = "sidecar"
		e.Error = err.Error()
		if m, ok := parseDefaultKey(p); ok {
			fromMeta(&e, m)
		}
		return e, true
	}
	if m := agentName.FindStringSubmatch(d.Name()); m != nil {
		e.Source = "agent"
		e.Config = m[1]
		e.Type = "agent"
		e.Trigger = TriggerSchedule
		if at, err := time.Parse("20060102-150405", m[2]); err == nil {
			e.CapturedAt = at
		}
		return e, true
	}
	if m, ok := parseDefaultKey(p); ok {
		e.Source = "key"
		fromMeta(&e, m)
		return e, true
	}
	for _, s := range profileSuffixes {
		if strings.HasSuffix(d.Name(), s) {
			e.Source = "key"
			e.Error = "no metadata: no sidecar and the name does not follow the default key layout"
			return e, true
		}
	}
	return Entry{}, false
}

// readSidecar reads and decodes the JSON sidecar name, at most maxSidecarBytes.
func readSidecar(root *os.Root, name string) (storage.Meta, error) {
	f, err := root.Open(name)
	if err != nil {
		return storage.Meta{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSidecarBytes+1))
	if err != nil {
		return storage.Meta{}, fmt.Errorf("read metadata %s: %w", name, err)
	}
	if len(b) > maxSidecarBytes {
		return storage.Meta{}, fmt.Errorf("metadata %s: more than %d bytes", name, maxSidecarBytes)
	}
	var m storage.Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return storage.Meta{}, fmt.Errorf("metadata %s: %w", name, err)
	}
	return m, nil
}

// Open reads the profile id through the directory's os.Root.
func (x *fsIndex) Open(ctx context.Context, id string, limit int64) ([]byte, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	limit = limitOrDefault(limit)
	what := fmt.Sprintf("profile %s in %s", id, x.dir)
	root, err := os.OpenRoot(x.dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", what, err)
	}
	defer root.Close()
	info, err := root.Lstat(id)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", what, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", what, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("open %s: %w: not a regular file", what, ErrNotFound)
	}
	if info.Size() > limit {
		return nil, fmt.Errorf("open %s: %d bytes: %w (%d bytes)", what, info.Size(), ErrTooLarge, limit)
	}
	file, err := root.Open(id)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", what, err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("open %s: more than %d bytes: %w", what, limit, ErrTooLarge)
	}
	return data, checkProfile(what, data, limit)
}
