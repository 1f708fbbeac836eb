package local

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/fs"
)

// Group is the capture engine group of local mode.
const Group = "local"

// session is one store (a directory, or S3 behind a spool) and one capture engine,
// with a tally of what they stored. The Runner and CaptureOne are built on it.
type session struct {
	engine *capture.Engine
	log    *slog.Logger

	// store is what the engine puts into: the fs store, or the spool in front of S3.
	store storage.Store
	// where names the destination for people: a directory, or s3://bucket/prefix.
	where string
	// locate returns where the profile stored under a key is: a file, or an s3:// URL.
	locate func(key string) string
	// remote is set when profiles go to S3.
	remote *spooledS3

	mu    sync.Mutex
	tally tally
}

// tally is what a session stored and failed to store.
type tally struct {
	// stored counts profiles acknowledged by the store: written to the directory,
	// or safe in the spool.
	stored, failed, cancelled int
	bytes                     int64
	// latest is where the newest profile of each type is, and latestAt when it was
	// captured; with S3 only uploaded profiles count, since only they can be fetched.
	latest   map[capture.ProfileType]string
	latestAt map[capture.ProfileType]time.Time

	// With S3: uploads of this run's profiles and of those an earlier run left in
	// the spool, evictions by reason, and what was still spooled at the end.
	uploaded, uploadedEarlier int
	evicted                   map[string]int
	pending                   int
}

// newSession creates an engine (not started) bounded by limits; openDir or openS3
// then picks the store. onResult, when set, also sees every result.
// httpClient is the engine's client; nil means capture.DefaultHTTPClient.
func newSession(limits LimitsConfig, log *slog.Logger, onResult func(capture.Result), httpClient *http.Client) (*session, error) {
	s := &session{log: log, tally: tally{
		latest:   make(map[capture.ProfileType]string),
		latestAt: make(map[capture.ProfileType]time.Time),
		evicted:  make(map[string]int),
	}}
	var err error
	s.engine, err = capture.New(capture.Config{
		MaxConcurrent:   limits.MaxConcurrent,
		MaxProfileBytes: limits.MaxProfileBytes,
		RequestTimeout:  limits.requestTimeout(),
		HTTPClient:      httpClient,
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

// openDir makes the session store profiles below dir.
func (s *session) openDir(dir string) error {
	store, err := fs.New(fs.Config{Dir: dir})
	if err != nil {
		return fmt.Errorf("open profile directory %s: %w", dir, err)
	}
	s.store, s.where = store, store.Dir()
	s.locate = func(key string) string { return filepath.Join(store.Dir(), filepath.FromSlash(key)) }
	return nil
}

// record logs a stored profile and counts every result. Failures are logged by the
// engine itself (error and failure reason), so they are only counted here.
func (s *session) record(res capture.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case res.Err == nil && s.remote != nil:
		s.tally.stored++
		s.tally.bytes += int64(res.Bytes)
		s.log.Debug("spooled profile", "target", res.Target.Name(), "type", res.Type, "key", res.Key,
			"bytes", res.Bytes, "took", res.Duration.Round(time.Millisecond).String(), "spool", s.remote.dir)
	case res.Err == nil:
		file := s.locate(res.Key)
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
	t.latest = maps.Clone(s.tally.latest)
	t.latestAt = maps.Clone(s.tally.latestAt)
	t.evicted = maps.Clone(s.tally.evicted)
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
	f := &CapturesFailedError{}
	for _, rs := range results {
		for _, r := range rs {
			f.Total++
			if r.Err != nil {
				f.Failed = append(f.Failed, r)
			}
		}
	}
	if len(f.Failed) > 0 {
		return f
	}
	return nil
}

// CapturesFailedError is the failed captures of a round. The engine has logged each
// failure with its error, so Error only names them (target, type, failure reason):
// a failure is printed once. Unwrap gives the errors themselves.
type CapturesFailedError struct {
	Failed []capture.Result
	Total  int
}

func (e *CapturesFailedError) Error() string {
	names := make([]string, len(e.Failed))
	for i, r := range e.Failed {
		names[i] = fmt.Sprintf("%s %s: %s", r.Target.Name(), r.Type, r.FailureReason)
	}
	return fmt.Sprintf("%d of %d captures failed (each logged above): %s", len(e.Failed), e.Total, strings.Join(names, ", "))
}

func (e *CapturesFailedError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, r := range e.Failed {
		errs[i] = r.Err
	}
	return errs
}

// shutdown stops the engine, letting in-flight captures finish for up to grace.
func (s *session) shutdown(ctx context.Context, grace time.Duration) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := s.engine.Shutdown(sctx); err != nil {
		s.log.Info("stopped capture engine before in-flight captures finished", "grace", grace.String(), "err", err)
	}
}
