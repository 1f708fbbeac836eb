package spool

import (
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"slices"
	"time"

	"github.com/kprof/kprof/internal/storage"
)

// load indexes the entries in Dir: it removes stale temporary files and evicts
// entries that are incomplete or do not match their sidecar. Data checksums are
// verified when an entry is read for upload, so loading reads only sidecars.
func (s *Spool) load() error {
	root, err := os.OpenRoot(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("open spool directory: %w", err)
	}
	defer root.Close()
	l, err := scanDir(root)
	if err != nil {
		return fmt.Errorf("list spool directory: %w", err)
	}
	for _, name := range l.temps {
		if err := root.Remove(name); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return fmt.Errorf("remove stale temporary file %s: %w", name, err)
		}
	}
	if len(l.temps) > 0 {
		s.log.Info("removed stale temporary files of interrupted writes", "count", len(l.temps))
	}
	if len(l.unknown) > 0 {
		s.log.Info("ignoring files that are not spool entries", "names", l.unknown)
	}

	ids := make([]string, 0, len(l.sidecars)+len(l.data))
	for id := range l.sidecars {
		ids = append(ids, id)
	}
	for id := range l.data {
		if !l.sidecars[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)

	var loaded []*entry
	for _, id := range ids {
		if !l.sidecars[id] {
			s.discardCorrupt(root, id, nil, l.data[id], errors.New("sidecar missing (an interrupted write, or a lost sidecar)"))
			continue
		}
		sc, err := readSidecar(root, id)
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				return fmt.Errorf("read sidecar of %s: %w", id, err)
			}
			s.discardCorrupt(root, id, nil, l.data[id], err)
			continue
		}
		size, ok := l.data[id]
		switch {
		case !ok:
			s.discardCorrupt(root, id, sc, sc.Size, errors.New("data file missing"))
			continue
		case size != sc.Size:
			s.discardCorrupt(root, id, sc, sc.Size, fmt.Errorf("data file has %d bytes, sidecar says %d", size, sc.Size))
			continue
		}
		e := &entry{id: id, key: sc.Key, meta: sc.Meta, size: sc.Size, enqueued: sc.EnqueuedAt.Round(0).UTC()}
		sum, _ := hex.DecodeString(sc.SHA256) // validated by readSidecar
		copy(e.sum[:], sum)
		loaded = append(loaded, e)
	}
	slices.SortFunc(loaded, func(a, b *entry) int {
		return cmp.Or(a.enqueued.Compare(b.enqueued), cmp.Compare(a.id, b.id))
	})
	s.mu.Lock()
	for _, e := range loaded {
		s.addLocked(e)
	}
	s.mu.Unlock()
	return nil
}

// discardCorrupt deletes the files of an entry found corrupt while loading and
// reports the eviction. sc is nil when the sidecar was missing or unreadable.
func (s *Spool) discardCorrupt(root *os.Root, id string, sc *sidecar, size int64, cause error) {
	if err := removeEntry(root, id); err != nil {
		s.log.Error("cannot remove corrupt spool entry", "err", err, "id", id)
	}
	var key string
	var meta storage.Meta
	if sc != nil {
		key, meta = sc.Key, sc.Meta
	}
	s.reportEviction(id, key, meta, size, ReasonCorrupt, cause)
}

// evictExpired evicts entries enqueued more than MaxAge ago that are not being
// uploaded.
func (s *Spool) evictExpired() {
	s.mu.Lock()
	now := s.cfg.Now()
	var victims []*entry
	for _, e := range s.order {
		if e.inFlight || e.claimed || now.Sub(e.enqueued) <= s.cfg.MaxAge {
			continue
		}
		s.claimLocked(e)
		victims = append(victims, e)
	}
	s.mu.Unlock()
	s.evict(victims, ReasonMaxAge, nil)
}

// evictOverLimit evicts entries larger than MaxBytes, then the oldest entries
// until the spool fits MaxBytes (after a restart with a lower MaxBytes).
func (s *Spool) evictOverLimit() {
	s.mu.Lock()
	var victims []*entry
	for _, e := range s.order {
		if !e.inFlight && !e.claimed && e.size > s.cfg.MaxBytes {
			s.claimLocked(e)
			victims = append(victims, e)
		}
	}
	for _, e := range s.order {
		if s.bytes-s.claimedBytes <= s.cfg.MaxBytes {
			break
		}
		if !e.inFlight && !e.claimed {
			s.claimLocked(e)
			victims = append(victims, e)
		}
	}
	s.mu.Unlock()
	s.evict(victims, ReasonMaxBytes, nil)
}

func (s *Spool) claimLocked(e *entry) {
	e.claimed = true
	s.claimedBytes += e.size
}

// evict deletes the files of claimed (or in-flight, for corrupt) entries,
// reports each eviction, then drops them from the index. cause, when set, is
// logged as the reason; else the time the entry spent in the spool is.
func (s *Spool) evict(victims []*entry, reason string, cause error) {
	if len(victims) == 0 {
		return
	}
	root, err := os.OpenRoot(s.cfg.Dir)
	if err != nil {
		s.log.Error("cannot open spool directory to remove evicted entries; they will be found again on the next start", "err", err)
	}
	now := s.cfg.Now()
	for _, e := range victims {
		if root != nil {
			if err := removeEntry(root, e.id); err != nil {
				s.log.Error("cannot remove evicted spool entry; it will be found again on the next start", "err", err, "id", e.id, "key", e.key)
			}
		}
		why := cause
		if why == nil {
			why = fmt.Errorf("evicted (%s) after %s in the spool", reason, now.Sub(e.enqueued).Round(time.Millisecond))
		}
		s.reportEviction(e.id, e.key, e.meta, e.size, reason, why)
	}
	if root != nil {
		_ = root.Close()
	}
	s.mu.Lock()
	for _, e := range victims {
		s.dropLocked(e)
	}
	s.mu.Unlock()
}

// reportEviction logs, counts and calls OnEvicted for one discarded entry.
func (s *Spool) reportEviction(id, key string, meta storage.Meta, size int64, reason string, cause error) {
	s.log.Error("spooled profile discarded without upload", "err", cause, "reason", reason, "key", key, "id", id, "bytes", size)
	s.cfg.Metrics.evicted(s.store, reason)
	if s.cfg.OnEvicted != nil {
		s.cfg.OnEvicted(key, meta, reason)
	}
}
