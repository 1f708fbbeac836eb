package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/logging"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/fs"
	"github.com/kprof/kprof/internal/storage/remote"
	"github.com/kprof/kprof/internal/storage/s3"
	"github.com/kprof/kprof/internal/storage/spool"
)

// Secret keys read from s3Config.credentialsSecretRef.
const (
	SecretKeyAccessKeyID     = "accessKeyID"
	SecretKeySecretAccessKey = "secretAccessKey"
	SecretKeySessionToken    = "sessionToken"
)

// StoreResolver returns the store a ProfilingConfig writes to and reports its health.
type StoreResolver interface {
	Resolve(ctx context.Context, pc *profilingv1alpha1.ProfilingConfig) (storage.Store, error)
	// Health is nil for a usable store, else the classified error of its last upload or check.
	Health(pc *profilingv1alpha1.ProfilingConfig) error
	// Forget releases what group used (its remote stays while other configs use it).
	Forget(group string)
}

// ErrConfig marks a configuration problem (bad Secret, bad path): a Ready=False reason.
type ErrConfig struct {
	Reason string
	Err    error
}

func (e *ErrConfig) Error() string { return e.Err.Error() }
func (e *ErrConfig) Unwrap() error { return e.Err }

// StoresConfig configures Stores.
type StoresConfig struct {
	// ProfilesDir holds profiles of configs without s3Config.
	ProfilesDir string
	// SpoolDir holds one spool per remote store.
	SpoolDir      string
	SpoolMaxBytes int64
	SpoolMaxAge   time.Duration
	// SecretsNamespace is where credentialsSecretRef Secrets are read (the operator's namespace).
	SecretsNamespace string
	// Secrets reads Secrets without a cache (the operator must not watch every Secret).
	Secrets client.Reader
	// SpoolMetrics is shared by every spool.
	SpoolMetrics *spool.Metrics
	// Pruner keeps ProfilesDir within its retention; it gets each config's
	// spec.localStorage limits and is told of every write. Nil: no retention.
	Pruner *fs.Pruner
	Logger *slog.Logger

	// Callbacks (set by the reconciler).
	OnUploaded func(group string)
	OnEvicted  func(group, key, reason string)
	OnHealth   func(groups []string)
}

// Stores resolves a ProfilingConfig's storage: a filesystem store below ProfilesDir, or
// an S3 store behind a durable spool, one per distinct remote (bucket, endpoint,
// credentials), shared by the configs that name it. It runs on the leader and shuts the
// spools down when the manager stops.
type Stores struct {
	cfg StoresConfig

	mu      sync.Mutex
	local   map[string]*fs.Store
	remotes map[string]*destination // by remote id
	users   map[string]string       // group -> remote id
	stopped bool
}

// destination is one S3 destination: the S3 store (swapped when credentials change)
// behind a spool, and the hash of the credentials it uses.
type destination struct {
	*remote.Remote
	credsHash string
}

// NewStores validates cfg and returns Stores.
func NewStores(cfg StoresConfig) (*Stores, error) {
	if cfg.ProfilesDir == "" {
		return nil, errors.New("stores: ProfilesDir is required")
	}
	if cfg.SpoolDir == "" {
		return nil, errors.New("stores: SpoolDir is required")
	}
	if cfg.Secrets == nil {
		return nil, errors.New("stores: Secrets reader is required")
	}
	cfg.Logger = logging.OrDiscard(cfg.Logger)
	// The stores of localStorage.path nest below ProfilesDir (the root store holds
	// them all), so the temporary files an interrupted write left are removed once,
	// here, before any store writes; a store opened later must not delete the
	// temporary files of another one's write in progress.
	if err := fs.RemoveStaleTemps(cfg.ProfilesDir); err != nil {
		return nil, fmt.Errorf("stores: %w", err)
	}
	return &Stores{cfg: cfg, local: map[string]*fs.Store{}, remotes: map[string]*destination{}, users: map[string]string{}}, nil
}

var _ StoreResolver = (*Stores)(nil)

// Resolve implements StoreResolver.
func (s *Stores) Resolve(ctx context.Context, pc *profilingv1alpha1.ProfilingConfig) (storage.Store, error) {
	group := groupOf(pc)
	if pc.Spec.S3Config == nil {
		s.forgetRemote(group)
		return s.localStore(group, pc)
	}
	s.setLimits(group, nil)
	return s.remoteStore(ctx, group, pc.Spec.S3Config)
}

// setLimits gives the Pruner the retention of group's profiles (none without ls).
func (s *Stores) setLimits(group string, ls *profilingv1alpha1.LocalStorage) {
	if s.cfg.Pruner == nil {
		return
	}
	var l fs.Limits
	if ls != nil {
		l = fs.Limits{MaxAge: time.Duration(ls.MaxAgeSeconds) * time.Second, MaxBytes: ls.MaxBytes}
	}
	s.cfg.Pruner.SetLimits(group, l)
}

func (s *Stores) localStore(group string, pc *profilingv1alpha1.ProfilingConfig) (storage.Store, error) {
	sub := ""
	if pc.Spec.LocalStorage != nil {
		sub = pc.Spec.LocalStorage.Path
	}
	dir, err := dirBelow(s.cfg.ProfilesDir, sub)
	if err != nil {
		return nil, &ErrConfig{Reason: "InvalidLocalPath", Err: fmt.Errorf("spec.localStorage.path: %w", err)}
	}
	s.setLimits(group, pc.Spec.LocalStorage)
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.local[dir]
	if !ok {
		if st, err = fs.New(fs.Config{Dir: dir, KeepTemps: true}); err != nil {
			return nil, fmt.Errorf("open profiles directory %s: %w", dir, err)
		}
		s.local[dir] = st
	}
	if s.cfg.Pruner == nil {
		return st, nil
	}
	return s.cfg.Pruner.Notifying(st), nil
}

func (s *Stores) remoteStore(ctx context.Context, group string, c *profilingv1alpha1.S3Config) (storage.Store, error) {
	creds, err := s.credentials(ctx, c)
	if err != nil {
		return nil, err
	}
	scfg := s3.Config{
		Bucket: c.Bucket, Region: c.Region, Endpoint: c.Endpoint, UsePathStyle: c.UsePathStyle,
		SSE: c.ServerSideEncryption, KMSKeyID: c.KMSKeyID, Credentials: creds,
	}
	id := remoteID(c)
	hash := credsHash(creds)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil, errors.New("operator is shutting down")
	}
	r, ok := s.remotes[id]
	if ok && r.credsHash == hash {
		s.users[group] = id
		return r.Spool, nil
	}
	st, err := s3.New(ctx, scfg)
	if err != nil {
		return nil, &ErrConfig{Reason: "InvalidS3Config", Err: fmt.Errorf("spec.s3Config: %w", err)}
	}
	if ok {
		// Same destination, new credentials: swap them under the running spool.
		r.SetStore(st)
		r.credsHash = hash
		s.users[group] = id
		r.CheckInBackground(checkTimeout)
		return r.Spool, nil
	}
	rm, err := remote.New(remote.Config{
		Store: st,
		Spool: spool.Config{
			Dir:      filepath.Join(s.cfg.SpoolDir, id),
			MaxBytes: s.cfg.SpoolMaxBytes,
			MaxAge:   s.cfg.SpoolMaxAge,
			Metrics:  s.cfg.SpoolMetrics,
			Logger:   s.cfg.Logger.With("store", st.String()),
			OnUploaded: func(_ string, meta storage.Meta) {
				if s.cfg.OnUploaded != nil && meta.Config != "" {
					s.cfg.OnUploaded(meta.Config)
				}
			},
			OnEvicted: func(key string, meta storage.Meta, reason string) {
				if s.cfg.OnEvicted != nil {
					s.cfg.OnEvicted(meta.Config, key, reason)
				}
			},
		},
		OnHealth: func(error) { s.notifyHealth(id) },
	})
	if err != nil {
		return nil, fmt.Errorf("create spool for %s: %w", st.String(), err)
	}
	// Start replays what an earlier run left in this spool.
	if err := rm.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("start spool for %s: %w", st.String(), err)
	}
	s.remotes[id] = &destination{Remote: rm, credsHash: hash}
	s.users[group] = id
	rm.CheckInBackground(checkTimeout)
	return rm.Spool, nil
}

// checkTimeout bounds the check of a remote that runs when it is created or its
// credentials change, so a wrong bucket or credentials show in status before the
// first upload.
const checkTimeout = 30 * time.Second

func (s *Stores) notifyHealth(id string) {
	if s.cfg.OnHealth == nil {
		return
	}
	s.mu.Lock()
	var groups []string
	for g, rid := range s.users {
		if rid == id {
			groups = append(groups, g)
		}
	}
	s.mu.Unlock()
	sort.Strings(groups)
	s.cfg.OnHealth(groups)
}

// Health implements StoreResolver.
func (s *Stores) Health(pc *profilingv1alpha1.ProfilingConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.users[groupOf(pc)]
	if !ok {
		return nil
	}
	return s.remotes[id].Health()
}

// Forget implements StoreResolver.
func (s *Stores) Forget(group string) {
	s.forgetRemote(group)
	s.setLimits(group, nil)
}

func (s *Stores) forgetRemote(group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users, group)
}

// Start implements manager.Runnable: it waits for the manager to stop, then shuts the
// spools down. Spooled profiles stay on disk and are uploaded after the next start.
func (s *Stores) Start(ctx context.Context) error {
	<-ctx.Done()
	s.mu.Lock()
	s.stopped = true
	spools := make([]*spool.Spool, 0, len(s.remotes))
	for _, r := range s.remotes {
		spools = append(spools, r.Spool)
	}
	s.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var errs []error
	for _, sp := range spools {
		errs = append(errs, sp.Shutdown(sctx))
	}
	return errors.Join(errs...)
}

// credentials reads s3Config.credentialsSecretRef; nil means the default chain.
func (s *Stores) credentials(ctx context.Context, c *profilingv1alpha1.S3Config) (*s3.Credentials, error) {
	if c.CredentialsSecretRef == nil {
		return nil, nil
	}
	ref := types.NamespacedName{Namespace: s.cfg.SecretsNamespace, Name: c.CredentialsSecretRef.Name}
	var secret corev1.Secret
	if err := s.cfg.Secrets.Get(ctx, ref, &secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &ErrConfig{Reason: "SecretNotFound", Err: fmt.Errorf("spec.s3Config.credentialsSecretRef: Secret %s not found", ref)}
		}
		return nil, fmt.Errorf("read Secret %s: %w", ref, err)
	}
	id, key := string(secret.Data[SecretKeyAccessKeyID]), string(secret.Data[SecretKeySecretAccessKey])
	if id == "" || key == "" {
		return nil, &ErrConfig{Reason: "InvalidSecret", Err: fmt.Errorf("spec.s3Config.credentialsSecretRef: Secret %s must have keys %s and %s", ref, SecretKeyAccessKeyID, SecretKeySecretAccessKey)}
	}
	return &s3.Credentials{AccessKeyID: id, SecretAccessKey: key, SessionToken: string(secret.Data[SecretKeySessionToken])}, nil
}

// remoteID identifies a destination: the same bucket reached the same way with the same
// Secret shares one spool across configs and restarts.
func remoteID(c *profilingv1alpha1.S3Config) string {
	secret := ""
	if c.CredentialsSecretRef != nil {
		secret = c.CredentialsSecretRef.Name
	}
	path := ""
	if c.UsePathStyle != nil {
		path = fmt.Sprint(*c.UsePathStyle)
	}
	h := sha256.Sum256([]byte(strings.Join([]string{c.Endpoint, c.Bucket, c.Region, path, c.ServerSideEncryption, c.KMSKeyID, secret}, "\x00")))
	return "s3-" + hex.EncodeToString(h[:8])
}

func credsHash(c *s3.Credentials) string {
	if c == nil {
		return ""
	}
	h := sha256.Sum256([]byte(c.AccessKeyID + "\x00" + c.SecretAccessKey + "\x00" + c.SessionToken))
	return hex.EncodeToString(h[:])
}

// dirBelow joins a relative sub-path below root, refusing anything that escapes it
// (the CRD validates this too; this is the second line of defence).
func dirBelow(root, sub string) (string, error) {
	if filepath.IsAbs(sub) {
		return "", fmt.Errorf("%q must be relative", sub)
	}
	for _, seg := range strings.Split(sub, "/") {
		if seg == ".." {
			return "", fmt.Errorf("%q must not contain ..", sub)
		}
	}
	return filepath.Join(root, filepath.FromSlash(sub)), nil
}

// keyPrefix returns the configured key prefix of pc's storage.
func keyPrefix(pc *profilingv1alpha1.ProfilingConfig) string {
	switch {
	case pc.Spec.S3Config != nil:
		return pc.Spec.S3Config.Prefix
	case pc.Spec.LocalStorage != nil:
		return pc.Spec.LocalStorage.Prefix
	}
	return ""
}
