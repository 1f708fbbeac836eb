package local

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/storage/fs"
)

// Group is the capture engine group of local mode.
const Group = "local"

// session is one fs store and one capture engine, with a tally of what they stored.
// The Runner and CaptureOne are built on it.
type session struct {
	store  *fs.Store
	engine *capture.Engine
	log    logr.Logger

	mu    sync.Mutex
	tally tally
}

// tally is what a session stored and failed to store.
type tally struct {
	stored, failed, cancelled int
	bytes                     int64
	// latest is the file of the newest profile of each type.
	latest map[capture.ProfileType]string
}

// newSession creates the store below dir and an engine (not started) bounded by
// limits. onResult, when set, also sees every result.
func newSession(dir string, limits LimitsConfig, log logr.Logger, onResult func(capture.Result)) (*session, error) {
	store, err := fs.New(fs.Config{Dir: dir})
	if err != nil {
		return nil, fmt.Errorf("open profile directory %s: %w", dir, err)
	}
	s := &session{store: store, log: log, tally: tally{latest: make(map[capture.ProfileType]string)}}
	s.engine, err = capture.New(capture.Config{
		MaxConcurrent:   limits.MaxConcurrent,
		MaxProfileBytes: limits.MaxProfileBytes,
		RequestTimeout:  limits.requestTimeout(),
		OnResult: func(res capture.Result) {
			if onResult != nil {
				onResult(res) // first: it may end a progress bar that the log line would cut
			}
			s.record(res)
		},
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("create capture engine: %w", err)
	}
	return s, nil
}

// File is where the profile stored under key is.
func (s *session) file(key string) string {
	return filepath.Join(s.store.Dir(), filepath.FromSlash(key))
}

// record logs a stored profile and counts every result. Failures are logged by the
// engine itself (error and failure reason), so they are only counted here.
func (s *session) record(res capture.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case res.Err == nil:
		file := s.file(res.Key)
		s.tally.stored++
		s.tally.bytes += int64(res.Bytes)
		s.tally.latest[res.Type] = file
		s.log.Info("stored profile", "target", res.Target.Name(), "type", res.Type, "key", res.Key,
			"bytes", res.Bytes, "took", res.Duration.Round(time.Millisecond).String(), "file", file)
	case res.FailureReason == capture.FailureCanceled:
		s.tally.cancelled++
	default:
		s.tally.failed++
	}
}

func (s *session) snapshot() tally {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tally
	t.latest = make(map[capture.ProfileType]string, len(s.tally.latest))
	for k, v := range s.tally.latest {
		t.latest[k] = v
	}
	return t
}

// captureAll captures every target once, concurrently (within the engine's limit),
// and returns the failures joined.
func (s *session) captureAll(ctx context.Context, targets []capture.Target, p capture.Policy) error {
	results := make([][]capture.Result, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { results[i] = s.engine.CaptureNow(ctx, Group, t, p, capture.ReasonManual) })
	}
	wg.Wait()
	var errs []error
	total := 0
	for _, rs := range results {
		for _, r := range rs {
			total++
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("%w (%s)", r.Err, r.FailureReason))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d captures failed: %w", len(errs), total, errors.Join(errs...))
	}
	return nil
}

// shutdown stops the engine, letting in-flight captures finish for up to grace.
func (s *session) shutdown(ctx context.Context, grace time.Duration) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := s.engine.Shutdown(sctx); err != nil {
		s.log.Info("stopped capture engine before in-flight captures finished", "grace", grace.String(), "error", err.Error())
	}
}
