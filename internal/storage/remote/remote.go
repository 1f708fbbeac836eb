// Package remote is an S3 store behind a durable spool: a profile is safe once the
// spool has it, and is uploaded in the background, kept on disk while S3 is down and
// across restarts. The operator keeps one Remote per S3 destination (its credentials
// may change under a running spool); local mode keeps one per run.
package remote

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/s3"
	"github.com/kprof/kprof/internal/storage/spool"
)

// Config configures a Remote.
type Config struct {
	// Store is the S3 destination (required).
	Store *s3.Store
	// Spool configures the spool in front of Store; New sets its Remote and OnHealth.
	Spool spool.Config
	// OnHealth, when set, is called with the spool's health when it changes, and
	// with the result of a background check (CheckInBackground) when it ends.
	OnHealth func(err error)
}

// Remote is an S3 store behind a spool. It is a storage.Store through its spool:
// Put returns once the spool has the profile.
type Remote struct {
	*spool.Spool
	handle   *swapStore
	onHealth func(err error)

	mu       sync.Mutex
	checkErr error // of the last check of the current S3 store; cleared when the spool reports it healthy
}

// New creates the spool in cfg.Spool.Dir in front of cfg.Store; Start replays what
// an earlier run left in it.
func New(cfg Config) (*Remote, error) {
	if cfg.Store == nil {
		return nil, errors.New("remote: Store is required")
	}
	r := &Remote{handle: newSwapStore(cfg.Store), onHealth: cfg.OnHealth}
	sc := cfg.Spool
	sc.Remote = r.handle
	sc.OnHealth = r.spoolHealth
	sp, err := spool.New(sc)
	if err != nil {
		return nil, err
	}
	r.Spool = sp
	return r, nil
}

var (
	_ storage.Store   = (*Remote)(nil)
	_ storage.Locator = (*Remote)(nil)
)

// spoolHealth is the spool's OnHealth: a spool that works again clears the error of
// the last check.
func (r *Remote) spoolHealth(err error) {
	if err == nil {
		r.mu.Lock()
		r.checkErr = nil
		r.mu.Unlock()
	}
	if r.onHealth != nil {
		r.onHealth(err)
	}
}

// Health is nil for a usable store, else the classified error of the spool's last
// upload or, failing that, of the last check.
func (r *Remote) Health() error {
	if err := r.Spool.Health(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checkErr
}

// SetStore swaps the S3 store under the running spool (new credentials for the same
// destination); its queue stays, and the last check no longer counts.
func (r *Remote) SetStore(st *s3.Store) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handle.swap(st)
	r.checkErr = nil
}

// Check tests the bucket and the credentials of the current S3 store; Health
// reports its error until the spool reports the store healthy or the store changes.
func (r *Remote) Check(ctx context.Context) error {
	st := r.handle.current()
	err := st.Check(ctx)
	r.mu.Lock()
	if r.handle.current() == st {
		r.checkErr = err
	}
	r.mu.Unlock()
	return err
}

// CheckInBackground runs Check within timeout, then calls OnHealth with its result,
// so a wrong bucket or credentials show before the first upload.
func (r *Remote) CheckInBackground(timeout time.Duration) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		err := r.Check(ctx)
		if r.onHealth != nil {
			r.onHealth(err)
		}
	}()
}

// CredentialSource names where the current S3 store's credentials come from.
func (r *Remote) CredentialSource(ctx context.Context) (string, error) {
	return r.handle.current().CredentialSource(ctx)
}

// swapStore lets a spool keep its queue while the credentials of its S3 store change.
type swapStore struct{ cur atomic.Pointer[s3.Store] }

func newSwapStore(st *s3.Store) *swapStore {
	w := &swapStore{}
	w.cur.Store(st)
	return w
}

func (w *swapStore) current() *s3.Store { return w.cur.Load() }
func (w *swapStore) swap(st *s3.Store)  { w.cur.Store(st) }

func (w *swapStore) Put(ctx context.Context, key string, data []byte, meta storage.Meta) error {
	return w.current().Put(ctx, key, data, meta)
}

func (w *swapStore) Check(ctx context.Context) error { return w.current().Check(ctx) }
func (w *swapStore) Location(key string) string      { return w.current().Location(key) }
func (w *swapStore) String() string                  { return w.current().String() }

var (
	_ storage.Store   = (*swapStore)(nil)
	_ storage.Checker = (*swapStore)(nil)
	_ storage.Locator = (*swapStore)(nil)
)
