package controller

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/fs"
)

// StoreResolver returns the store a ProfilingConfig writes to.
type StoreResolver interface {
	Resolve(ctx context.Context, pc *profilingv1alpha1.ProfilingConfig) (storage.Store, error)
}

// ErrStorageUnsupported marks a storage option this build cannot serve.
var ErrStorageUnsupported = errors.New("storage option not supported")

// LocalStores resolves localStorage (and the default: no storage set) to filesystem
// stores below Dir, one per distinct path, created on first use.
type LocalStores struct {
	Dir string

	mu     sync.Mutex
	stores map[string]*fs.Store
}

var _ StoreResolver = (*LocalStores)(nil)

// Resolve implements StoreResolver.
func (l *LocalStores) Resolve(_ context.Context, pc *profilingv1alpha1.ProfilingConfig) (storage.Store, error) {
	if pc.Spec.S3Config != nil {
		return nil, fmt.Errorf("s3Config: %w: S3 uploads are not enabled in this operator", ErrStorageUnsupported)
	}
	sub := ""
	if pc.Spec.LocalStorage != nil {
		sub = pc.Spec.LocalStorage.Path
	}
	dir, err := l.dirFor(sub)
	if err != nil {
		return nil, fmt.Errorf("localStorage.path: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.stores[dir]; ok {
		return s, nil
	}
	s, err := fs.New(fs.Config{Dir: dir})
	if err != nil {
		return nil, fmt.Errorf("open profiles directory %s: %w", dir, err)
	}
	if l.stores == nil {
		l.stores = map[string]*fs.Store{}
	}
	l.stores[dir] = s
	return s, nil
}

// dirFor joins a relative sub-path below Dir, refusing anything that escapes it
// (the CRD validates this too; this is the second line of defence).
func (l *LocalStores) dirFor(sub string) (string, error) {
	if filepath.IsAbs(sub) {
		return "", fmt.Errorf("%q must be relative", sub)
	}
	for _, seg := range strings.Split(sub, "/") {
		if seg == ".." {
			return "", fmt.Errorf("%q must not contain ..", sub)
		}
	}
	return filepath.Join(l.Dir, filepath.FromSlash(sub)), nil
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
