package spool

import (
	"context"
	"errors"
	"maps"
	"os"
	"time"

	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/storage"
)

// remoteState is what the spool believes about the remote; guarded by Spool.mu.
type remoteState struct {
	// streak counts outage-kind failures in a row (attempts and Checks). While
	// it is positive the spool backs off globally: one attempt at a time, not
	// before globalNotBefore.
	streak          int
	globalNotBefore time.Time
	// seq numbers attempts and Checks in the order they start; applied is the
	// seq of the latest result applied to streak, so a slow old result never
	// overrides a newer one.
	seq, applied uint64
	// lastActivity is when an attempt or Check last finished (for the prober).
	lastActivity time.Time
}

// isOutage reports whether kind means the remote as a whole is unusable, rather
// than one upload having failed.
func isOutage(kind storage.ErrorKind) bool {
	switch kind {
	case storage.KindEndpointUnreachable, storage.KindInvalidCredentials, storage.KindNoSuchBucket, storage.KindAccessDenied:
		return true
	}
	return false
}

// classify returns the kind of a remote error, bounded to the known kinds, and
// the error to report, wrapped so that storage.KindOf agrees with that kind. An
// unclassified error after the attempt's own timeout is EndpointUnreachable.
func classify(op string, err error, timedOut bool) (storage.ErrorKind, error) {
	kind := storage.KindOf(err)
	switch kind {
	case storage.KindNoSuchBucket, storage.KindAccessDenied, storage.KindInvalidCredentials,
		storage.KindEndpointUnreachable, storage.KindVerifyFailed:
	default:
		kind = storage.KindStoreError
		if timedOut && storage.KindOf(err) == storage.KindStoreError {
			kind = storage.KindEndpointUnreachable
		}
	}
	if storage.KindOf(err) != kind {
		err = &storage.Error{Kind: kind, Op: op, Err: err}
	}
	return kind, err
}

// backoff is the delay after the n-th failure in a row (of an entry, or of the
// remote while it looks down): lifecycle.Backoff from MinBackoff to MaxBackoff.
func (s *Spool) backoff(n int) time.Duration {
	return lifecycle.Backoff{Base: s.cfg.MinBackoff, Max: s.cfg.MaxBackoff}.Delay(n)
}

func (s *Spool) worker() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		e, seq, wakeAt, changed, stop := s.next()
		if stop {
			return
		}
		if e != nil {
			s.upload(e, seq)
			continue
		}
		var due <-chan time.Time
		if !wakeAt.IsZero() {
			timer.Reset(time.Until(wakeAt))
			due = timer.C
		}
		select {
		case <-s.stopCh:
			return
		case <-changed:
		case <-due:
		}
	}
}

// next claims the oldest entry that may be uploaded now. Otherwise it returns
// when to look again (zero: on the next change) and the channel closed on the
// next change.
func (s *Spool) next() (e *entry, seq uint64, wakeAt time.Time, changed <-chan struct{}, stop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.guard.ShutDown() {
		return nil, 0, time.Time{}, nil, true
	}
	changed = s.changed
	now := time.Now()
	if s.remote.streak > 0 {
		if s.inFlight > 0 {
			return nil, 0, time.Time{}, changed, false
		}
		if now.Before(s.remote.globalNotBefore) {
			return nil, 0, s.remote.globalNotBefore, changed, false
		}
	}
	var blocked map[string]bool // keys with an older entry not uploadable now
	for _, c := range s.order {
		if c.claimed || blocked[c.key] {
			continue
		}
		if c.inFlight || now.Before(c.notBefore) {
			if !c.inFlight && (wakeAt.IsZero() || c.notBefore.Before(wakeAt)) {
				wakeAt = c.notBefore
			}
			if s.keyCount[c.key] > 1 {
				if blocked == nil {
					blocked = map[string]bool{}
				}
				blocked[c.key] = true
			}
			continue
		}
		c.inFlight = true
		s.inFlight++
		s.remote.seq++
		return c, s.remote.seq, time.Time{}, changed, false
	}
	return nil, 0, wakeAt, changed, false
}

// upload makes one attempt to upload e, which next marked in flight.
func (s *Spool) upload(e *entry, seq uint64) {
	log := s.log.With("key", e.key, "id", e.id)
	data, err := s.read(e)
	if errors.Is(err, errCorrupt) {
		s.evict([]*entry{e}, ReasonCorrupt, err)
		return
	}
	if err != nil {
		log.Error("cannot read spooled profile, will retry", "err", err)
		s.mu.Lock()
		e.attempts++
		e.notBefore = time.Now().Add(s.backoff(e.attempts))
		s.releaseLocked(e)
		s.mu.Unlock()
		return
	}

	ctx, cancel := context.WithTimeout(s.hardCtx, s.cfg.UploadTimeout)
	start := time.Now()
	err = s.cfg.Remote.Put(ctx, e.key, data, cloneMeta(e.meta))
	elapsed := time.Since(start)
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()

	switch {
	case err == nil:
		s.uploaded(e, seq, elapsed)
	case s.hardCtx.Err() != nil:
		log.Info("upload cancelled by shutdown, the profile stays spooled", "err", err)
		s.mu.Lock()
		s.releaseLocked(e)
		s.mu.Unlock()
	default:
		kind, err := classify("upload "+e.key, err, timedOut)
		s.failed(e, seq, kind, err, elapsed)
	}
}

// read reads e's data and verifies it against the sidecar.
func (s *Spool) read(e *entry) ([]byte, error) {
	root, err := os.OpenRoot(s.cfg.Dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return readData(root, e.id, e.size, e.sum)
}

// uploaded removes the files of an entry the remote confirmed, then reports it.
func (s *Spool) uploaded(e *entry, seq uint64, elapsed time.Duration) {
	root, err := os.OpenRoot(s.cfg.Dir)
	if err == nil {
		err = removeEntry(root, e.id)
		_ = root.Close()
	}
	if err != nil {
		// Not lost: the next Start uploads it again under the same key.
		s.log.Error("cannot remove uploaded profile from the spool", "err", err, "key", e.key, "id", e.id)
	}
	s.mu.Lock()
	s.remote.lastActivity = time.Now()
	s.applySuccessLocked(seq)
	s.mu.Unlock()
	s.setHealth(seq, nil)
	s.cfg.Metrics.uploaded(s.store, elapsed.Seconds())
	s.log.Debug("profile uploaded", "key", e.key, "bytes", e.size, "attempts", e.attempts+1, "duration", elapsed)
	if s.cfg.OnUploaded != nil {
		s.cfg.OnUploaded(e.key, cloneMeta(e.meta))
	}
	s.mu.Lock()
	s.dropLocked(e)
	s.mu.Unlock()
}

// failed schedules the next attempt of e. Health is updated before e is
// released, so while the remote looks down (one attempt at a time) health
// updates happen in attempt order.
func (s *Spool) failed(e *entry, seq uint64, kind storage.ErrorKind, err error, elapsed time.Duration) {
	s.mu.Lock()
	s.remote.lastActivity = time.Now()
	s.applyFailureLocked(seq, kind)
	s.mu.Unlock()
	s.setHealth(seq, err)
	s.cfg.Metrics.failed(s.store, kind, elapsed.Seconds())

	s.mu.Lock()
	e.attempts++
	delay := s.backoff(e.attempts)
	e.notBefore = time.Now().Add(delay)
	e.lastOutage = isOutage(kind)
	attempts := e.attempts
	s.releaseLocked(e)
	s.mu.Unlock()
	s.log.Debug("upload failed, will retry", "key", e.key, "kind", kind, "attempts", attempts, "retryIn", delay, "err", err)
}

func (s *Spool) releaseLocked(e *entry) {
	if e.inFlight {
		e.inFlight = false
		s.inFlight--
	}
	s.broadcastLocked()
}

// applySuccessLocked ends a global backoff. After an outage of two or more
// failures in a row, entries that failed only because the remote was down are
// retried at once.
func (s *Spool) applySuccessLocked(seq uint64) {
	if seq <= s.remote.applied {
		return
	}
	s.remote.applied = seq
	if s.remote.streak >= 2 {
		for _, e := range s.order {
			if e.lastOutage {
				e.lastOutage = false
				e.notBefore = time.Time{}
			}
		}
	}
	s.remote.streak = 0
	s.remote.globalNotBefore = time.Time{}
	s.broadcastLocked()
}

// applyFailureLocked extends the global backoff after an outage-kind failure,
// and ends it after any other failure (the remote answered).
func (s *Spool) applyFailureLocked(seq uint64, kind storage.ErrorKind) {
	if seq <= s.remote.applied {
		return
	}
	s.remote.applied = seq
	if !isOutage(kind) {
		s.remote.streak = 0
		s.remote.globalNotBefore = time.Time{}
		return
	}
	s.remote.streak++
	s.remote.globalNotBefore = time.Now().Add(s.backoff(s.remote.streak))
}

// setHealth records the result of attempt seq unless a later one was recorded,
// and calls OnHealth on a change between healthy and unhealthy or of error kind.
func (s *Spool) setHealth(seq uint64, err error) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if seq <= s.healthSeq {
		return
	}
	s.healthSeq = seq
	prev := s.Health()
	s.health.Store(&healthValue{err: err})
	if (prev == nil) == (err == nil) && storage.KindOf(prev) == storage.KindOf(err) {
		return
	}
	if err == nil {
		s.log.Info("remote store healthy")
	} else {
		s.log.Error("remote store unhealthy, profiles stay spooled and are retried", "err", err, "kind", storage.KindOf(err))
	}
	if s.cfg.OnHealth != nil {
		s.cfg.OnHealth(err)
	}
}

// housekeeping evicts expired entries periodically and probes the remote's
// health when no upload has told us about it for ProbeInterval.
func (s *Spool) housekeeping() {
	defer s.wg.Done()
	ageTick := time.NewTicker(s.ageEvery)
	defer ageTick.Stop()
	var probeTick <-chan time.Time
	if s.checker != nil {
		t := time.NewTicker(s.cfg.ProbeInterval)
		defer t.Stop()
		probeTick = t.C
		s.probe()
	}
	for {
		select {
		case <-s.stopCh:
			return
		case <-ageTick.C:
			s.evictExpired()
		case <-probeTick:
			s.probe()
		}
	}
}

// probe calls the remote's Check when no attempt is in flight and none finished
// within ProbeInterval.
func (s *Spool) probe() {
	s.mu.Lock()
	if s.guard.ShutDown() || s.inFlight > 0 ||
		(!s.remote.lastActivity.IsZero() && time.Since(s.remote.lastActivity) < s.cfg.ProbeInterval) {
		s.mu.Unlock()
		return
	}
	s.remote.seq++
	seq := s.remote.seq
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(s.hardCtx, s.cfg.UploadTimeout)
	err := s.checker.Check(ctx)
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	cancel()
	if s.hardCtx.Err() != nil {
		return
	}
	var kind storage.ErrorKind
	if err != nil {
		kind, err = classify("check "+s.store, err, timedOut)
	}
	s.mu.Lock()
	s.remote.lastActivity = time.Now()
	if err == nil {
		s.applySuccessLocked(seq)
	} else {
		s.applyFailureLocked(seq, kind)
	}
	s.mu.Unlock()
	s.setHealth(seq, err)
}

func cloneMeta(m storage.Meta) storage.Meta {
	m.Labels = maps.Clone(m.Labels)
	return m
}
