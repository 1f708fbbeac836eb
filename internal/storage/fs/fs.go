// Package fs is the filesystem storage.Store: each profile is a file below a
// directory, with its metadata as JSON beside it.
//
// Layout and crash safety: a profile stored under key K is the file Dir/K and its
// metadata is Dir/K.json. Both are written to temporary files named ".tmp-*" in
// the destination directory, fsynced, and renamed into place, metadata first, then
// the profile; the directory is fsynced afterwards. So a reader that sees a profile
// always finds its metadata, and a crash leaves at most a ".tmp-*" file (removed by
// the next New or RemoveStaleTemps) or a metadata file without its profile, never something that looks
// like a half-written profile.
//
// Retention: a Pruner (prune.go) keeps a directory and the stores below it within
// an age and a size bound, oldest profiles first, each with its sidecar.
//
// All file access goes through an os.Root, so neither a key nor a symbolic link
// below Dir can reach outside Dir.
package fs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/durable"
)

const (
	// tempPrefix starts the name of every file that is not yet in place.
	tempPrefix = durable.TempPrefix
	// MetaSuffix is appended to a profile's path to name its metadata file.
	MetaSuffix = ".json"

	dirPerm  = 0o755
	filePerm = 0o644
)

var _ storage.Store = (*Store)(nil)

// Config configures a Store.
type Config struct {
	// Dir is the directory profiles are stored below; created when missing. Required.
	Dir string
	// KeepTemps leaves the ".tmp-*" files below Dir alone in New. Set it for a store
	// inside a directory whose owner removed the stale ones once (RemoveStaleTemps)
	// before any store wrote: otherwise opening a store deletes the temporary files
	// of the writes in progress of every other store below it.
	KeepTemps bool
}

// SetDefaults normalizes Dir to a clean absolute path.
func (c *Config) SetDefaults() {
	if strings.TrimSpace(c.Dir) != "" {
		if abs, err := filepath.Abs(c.Dir); err == nil {
			c.Dir = abs
		}
	}
}

// Validate checks c.
func (c *Config) Validate() error {
	if strings.TrimSpace(c.Dir) == "" {
		return errors.New("fs store config: Dir is required")
	}
	if _, err := filepath.Abs(c.Dir); err != nil {
		return fmt.Errorf("fs store config: Dir %q: %w", c.Dir, err)
	}
	return nil
}

// Store writes profiles below a directory. It is safe for concurrent use. One
// Store (one process) should own a directory: New removes leftover temporary
// files, including those another live writer may be using (see KeepTemps).
type Store struct {
	dir string
	// renameMu makes the two renames of one Put (metadata, then profile) a unit, so
	// concurrent Puts of the same key never pair one's profile with another's metadata.
	renameMu sync.Mutex
	// beforeProfileRename, when set (tests), runs after the metadata is in place and
	// before the profile is renamed.
	beforeProfileRename func()
}

// New normalizes and validates cfg, creates the directory and (unless KeepTemps) removes stale
// temporary files that an interrupted Put left below it.
func New(cfg Config) (*Store, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, dirPerm); err != nil {
		return nil, fmt.Errorf("create fs store directory %s: %w", cfg.Dir, err)
	}
	if !cfg.KeepTemps {
		if err := RemoveStaleTemps(cfg.Dir); err != nil {
			return nil, err
		}
	}
	return &Store{dir: cfg.Dir}, nil
}

// String names the store for logs and status.
func (s *Store) String() string { return "fs:" + s.dir }

// Location implements storage.Locator: file:// and the profile's absolute path.
func (s *Store) Location(key string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(s.dir, filepath.FromSlash(key)))}).String()
}

// Dir returns the directory profiles are stored below.
func (s *Store) Dir() string { return s.dir }

// Put stores data under key and meta as JSON under key+".json". key is a
// relative slash-separated path; absolute keys, traversal, empty segments and
// names reserved by the store are rejected. A ctx cancelled before the profile
// is renamed into place leaves nothing behind.
func (s *Store) Put(ctx context.Context, key string, data []byte, meta storage.Meta) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("fs store: put %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("fs store: put %s: %w", key, err)
	}
	metaJSON, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fmt.Errorf("fs store: put %s: encode metadata: %w", key, err)
	}

	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return fmt.Errorf("fs store: put %s: open store directory: %w", key, err)
	}
	defer root.Close()

	dir := path.Dir(key)
	metaTmp, err := writeFirstTemp(root, dir, metaJSON)
	if err != nil {
		return fmt.Errorf("fs store: put %s: %w", key, err)
	}
	defer removeIfExists(root, metaTmp)
	dataTmp, err := durable.WriteTemp(root, dir, data, filePerm)
	if err != nil {
		return fmt.Errorf("fs store: put %s: write profile: %w", key, err)
	}
	defer removeIfExists(root, dataTmp)

	if err := s.renamePair(ctx, root, key, metaTmp, dataTmp); err != nil {
		return fmt.Errorf("fs store: put %s: %w", key, err)
	}
	if err := durable.SyncDir(root, dir); err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			return nil // a Pruner deleted the profile already, and then its emptied directory
		}
		return fmt.Errorf("fs store: put %s: sync directory %s: %w", key, dir, err)
	}
	return nil
}

// writeFirstTemp creates dir and writes the first temporary file of a Put into
// it. A Pruner removes directories it emptied; when it removes dir between the two
// steps, they are tried again. Once the temporary file exists, dir is not empty and
// stays.
func writeFirstTemp(root *os.Root, dir string, data []byte) (string, error) {
	for attempt := 1; ; attempt++ {
		var name string
		err := durable.MkdirAll(root, dir, dirPerm)
		if err != nil {
			err = fmt.Errorf("create directory %s: %w", dir, err)
		} else if name, err = durable.WriteTemp(root, dir, data, filePerm); err == nil {
			return name, nil
		} else {
			err = fmt.Errorf("write metadata: %w", err)
		}
		if !errors.Is(err, iofs.ErrNotExist) || attempt == 5 {
			return "", err
		}
	}
}

// renamePair moves the metadata, then the profile, into place. When it fails
// after the metadata was placed for a key that had no profile yet, it removes
// that metadata again.
func (s *Store) renamePair(ctx context.Context, root *os.Root, key, metaTmp, dataTmp string) error {
	s.renameMu.Lock()
	defer s.renameMu.Unlock()

	if err := ctx.Err(); err != nil {
		return err
	}
	info, statErr := root.Lstat(key)
	profileExisted := statErr == nil && info.Mode().IsRegular()
	metaKey := key + MetaSuffix
	if err := root.Rename(metaTmp, metaKey); err != nil {
		return fmt.Errorf("rename metadata into place: %w", err)
	}
	undoMeta := func() {
		if !profileExisted {
			_ = root.Remove(metaKey)
		}
	}
	if s.beforeProfileRename != nil {
		s.beforeProfileRename()
	}
	if err := ctx.Err(); err != nil {
		undoMeta()
		return err
	}
	if err := root.Rename(dataTmp, key); err != nil {
		undoMeta()
		return fmt.Errorf("rename profile into place: %w", err)
	}
	return nil
}

// CheckKey reports why key cannot name a stored profile: it must be a clean,
// relative, slash-separated path without "." or ".." segments, backslashes or
// NUL bytes, no segment may start with ".tmp-" and it may not end in ".json"
// (both reserved by the store).
func CheckKey(key string) error {
	switch {
	case key == "":
		return errors.New("key is empty")
	case strings.HasPrefix(key, "/") || filepath.IsAbs(key):
		return errors.New("key must be relative, not absolute")
	case strings.ContainsAny(key, "\\\x00"):
		return errors.New("key must not contain backslashes or NUL bytes")
	case strings.HasSuffix(key, MetaSuffix):
		return fmt.Errorf("key must not end in %q (reserved for metadata)", MetaSuffix)
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return errors.New("key has an empty path segment")
		case seg == "." || seg == "..":
			return fmt.Errorf("key has a %q path segment", seg)
		case strings.HasPrefix(seg, tempPrefix):
			return fmt.Errorf("key segment %q starts with %q (reserved for temporary files)", seg, tempPrefix)
		}
	}
	return nil
}

// removeIfExists removes a temporary file that was not renamed into place. It is
// best effort: a file it cannot remove is removed by the next New.
func removeIfExists(root *os.Root, name string) {
	_ = root.Remove(name)
}

// RemoveStaleTemps deletes every regular ".tmp-*" file below dir, which interrupted
// Puts left; a missing dir has none. Symbolic links are not followed. Call it only
// while no Store below dir writes (at startup).
func RemoveStaleTemps(dir string) error {
	root, err := os.OpenRoot(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil
	}
	if err == nil {
		defer root.Close()
		err = durable.RemoveTemps(root)
	}
	if err != nil {
		return fmt.Errorf("remove stale temporary files below %s: %w", dir, err)
	}
	return nil
}
