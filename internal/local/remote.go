package local

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/remote"
	"github.com/kprof/kprof/internal/storage/s3"
	"github.com/kprof/kprof/internal/storage/spool"
)

// Timeouts of the S3 destination of local mode.
const (
	// DefaultFlushTimeout is how long the end of a run waits for spooled profiles to
	// reach S3 before leaving them in the spool for the next run.
	DefaultFlushTimeout = 30 * time.Second
	// spoolMaxBackoff caps the wait between upload attempts while S3 is down, lower
	// than the operator's: a local run is short and should catch up soon after S3
	// is back.
	spoolMaxBackoff = 15 * time.Second
	// spoolShutdownTimeout bounds stopping the spool's workers once the flush is over.
	spoolShutdownTimeout = 10 * time.Second
	// checkTimeout bounds the check of the bucket and credentials at the start.
	checkTimeout = 15 * time.Second
)

// spooledS3 is the S3 destination of a session: an S3 store behind a durable spool.
type spooledS3 struct {
	*remote.Remote
	bucket   string
	endpoint string
	// dir is the spool directory, absolute.
	dir string
	// started is when the run began; uploads of profiles captured before it were
	// left in the spool by an earlier run.
	started time.Time
	// lastErr is the latest store problem (the check at the start, then the spool's
	// health changes), nil once healthy; guarded by session.mu.
	lastErr error
}

// openS3 makes the session send profiles to S3 through a spool in cfg.Spool.Path.
// Credentials come from the AWS default chain. The spool is not started.
func (s *session) openS3(ctx context.Context, cfg StorageConfig) error {
	c := cfg.S3
	st, err := s3.New(ctx, s3.Config{
		Bucket:       c.Bucket,
		Region:       c.Region,
		Endpoint:     c.Endpoint,
		UsePathStyle: c.UsePathStyle,
		SSE:          c.ServerSideEncryption,
		KMSKeyID:     c.KMSKeyID,
	})
	if err != nil {
		return fmt.Errorf("storage.s3: open bucket %s: %w", c.Bucket, err)
	}
	rm, err := remote.New(remote.Config{
		Store: st,
		Spool: spool.Config{
			Dir:        cfg.Spool.Path,
			MaxBytes:   cfg.Spool.MaxBytes,
			MaxAge:     cfg.Spool.MaxAge(),
			MaxBackoff: spoolMaxBackoff,
			OnUploaded: s.uploaded,
			OnEvicted:  s.evicted,
			Logger:     s.log, // the spool names itself
		},
		OnHealth: s.health,
	})
	if err != nil {
		return fmt.Errorf("storage.spool: open %s: %w", cfg.Spool.Path, err)
	}
	r := &spooledS3{Remote: rm, bucket: c.Bucket, endpoint: c.Endpoint, started: time.Now()}
	if r.dir, err = filepath.Abs(cfg.Spool.Path); err != nil {
		r.dir = cfg.Spool.Path
	}
	s.remote, s.store = r, rm.Spool
	s.where = "s3://" + path.Join(c.Bucket, strings.Trim(cfg.Prefix, "/"))
	s.locate = r.url
	return nil
}

// url is the s3:// URL of key.
func (r *spooledS3) url(key string) string { return "s3://" + r.bucket + "/" + key }

// start replays what an earlier run left in the spool and checks the bucket and the
// credentials, logging a problem rather than failing: profiles wait in the spool
// until S3 works.
func (s *session) start(ctx context.Context) error {
	if s.remote == nil {
		return nil
	}
	r := s.remote
	if err := r.Start(ctx); err != nil {
		return fmt.Errorf("storage.spool: start %s: %w", r.dir, err)
	}
	if n, b := r.Pending(); n > 0 {
		s.log.Info("uploading profiles an earlier run left in the spool", "count", n, "bytes", b, "spool", r.dir, "store", s.where)
	}
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	src, err := r.CredentialSource(cctx)
	if err == nil {
		err = r.Check(cctx)
	}
	if err != nil {
		s.setStoreErr(err)
		s.log.Error("S3 store check failed; profiles are kept in the spool until it works", "err", err,
			"store", s.where, "kind", storage.KindOf(err), "spool", r.dir)
		return nil
	}
	s.log.Info("S3 store ready", "store", s.where, "credentials", src, "spool", r.dir)
	return nil
}

func (s *session) setStoreErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remote.lastErr = err
}

func (s *session) storeErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remote.lastErr
}

// uploaded is the spool's OnUploaded.
func (s *session) uploaded(key string, meta storage.Meta) {
	s.mu.Lock()
	defer s.mu.Unlock()
	url := s.remote.url(key)
	s.remote.lastErr = nil
	if meta.CapturedAt.Before(s.remote.started) {
		s.tally.uploadedEarlier++
	} else {
		s.tally.uploaded++
	}
	if typ := capture.ProfileType(meta.Type); !meta.CapturedAt.Before(s.tally.latestAt[typ]) {
		s.tally.latest[typ], s.tally.latestAt[typ] = url, meta.CapturedAt
	}
	s.log.Info("uploaded profile", "target", meta.Target, "type", meta.Type, "url", url)
}

// evicted is the spool's OnEvicted: a profile dropped without upload, which the
// spool logs; the summary counts it.
func (s *session) evicted(_ string, _ storage.Meta, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tally.evicted[reason]++
}

// health is the spool's OnHealth (the spool logs the change): it keeps the latest
// store problem for the error of drain.
func (s *session) health(err error) { s.setStoreErr(err) }

// drain waits up to timeout for the spool to upload everything, or until ctx is
// done (an interrupt), then stops it. Profiles still spooled stay on disk for the next run with the same spool; the
// error says how many, why (the store problem) and where they are.
func (s *session) drain(ctx context.Context, timeout time.Duration) error {
	if s.remote == nil {
		return nil
	}
	r := s.remote
	if n, b := r.Pending(); n > 0 {
		s.log.Info("waiting for spooled profiles to upload", "count", n, "bytes", b, "timeout", timeout.String(), "store", s.where)
	}
	fctx, cancel := context.WithTimeout(ctx, timeout)
	flushErr := r.Flush(fctx)
	cancel()
	health := r.Spool.Health() // the spool's own: the check's error is lastErr

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), spoolShutdownTimeout)
	defer cancel()
	if err := r.Shutdown(sctx); err != nil {
		s.log.Error("stop spool", "err", err, "spool", r.dir)
	}
	pending, _ := r.Pending()
	s.mu.Lock()
	s.tally.pending = pending
	s.mu.Unlock()
	if pending == 0 {
		return nil
	}
	cause := health
	if cause == nil {
		cause = s.storeErr()
	}
	if cause == nil {
		cause = flushErr
	}
	if cause == nil {
		cause = errors.New("the spool stopped before they were uploaded")
	}
	when := "within " + timeout.String()
	if ctx.Err() != nil {
		when = "before the run was interrupted"
	}
	return fmt.Errorf("upload to %s: %d profile(s) not uploaded %s (store problem: %s): %w; "+
		"they remain in the spool %s and are uploaded by the next kprof run with the same storage.spool.path",
		s.where, pending, when, problem(cause), cause, r.dir)
}

// problem names the kind of a store error for people.
func problem(err error) string {
	switch k := storage.KindOf(err); {
	case errors.Is(err, context.DeadlineExceeded) && k == storage.KindStoreError:
		return "timed out"
	case k == "":
		return "cancelled"
	default:
		return string(k)
	}
}
