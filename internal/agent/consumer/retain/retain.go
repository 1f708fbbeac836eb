// Package retain bounds a directory of files a consumer writes (perf.data,
// pprof): the oldest go first once there are too many or they weigh too much.
package retain

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Policy says which files of Dir are managed and how many may stay.
type Policy struct {
	Dir string
	// Prefix and Suffix select the managed files; names between them must sort
	// by age (a UTC timestamp first, a "-N" for files of the same second).
	Prefix, Suffix string
	// MaxFiles keeps at most this many (at least 1 is always kept); MaxBytes,
	// when > 0, bounds their total size.
	MaxFiles int
	MaxBytes int64
}

// Prune removes the oldest managed files beyond the policy. The newest file
// is never removed. Files that vanish meanwhile are not an error.
func Prune(p Policy) error {
	ents, err := os.ReadDir(p.Dir)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	type file struct {
		name string
		size int64
	}
	var files []file
	var total int64
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, p.Prefix) || !strings.HasSuffix(n, p.Suffix) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		files = append(files, file{n, info.Size()})
		total += info.Size()
	}
	// Names hold the time, so their order is the files' age; a "-N" suffix
	// (same second) sorts after its base once the suffix is cut.
	key := func(n string) string { return strings.TrimSuffix(n, p.Suffix) }
	sort.Slice(files, func(i, j int) bool { return key(files[i].name) < key(files[j].name) })
	var errs []error
	for len(files) > 1 && (len(files) > p.MaxFiles || (p.MaxBytes > 0 && total > p.MaxBytes)) {
		if err := os.Remove(filepath.Join(p.Dir, files[0].name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("retention: %w", err))
		}
		total -= files[0].size
		files = files[1:]
	}
	return errors.Join(errs...)
}

// FreeName returns the path Dir/Prefix+stamp+Suffix, or with "-N" before the
// suffix when that name is taken.
func FreeName(dir, prefix, stamp, suffix string) string {
	base := prefix + stamp
	p := filepath.Join(dir, base+suffix)
	for i := 1; ; i++ {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = filepath.Join(dir, fmt.Sprintf("%s-%d%s", base, i, suffix))
	}
}
