// Package testenv starts a real kube-apiserver + etcd (controller-runtime envtest)
// with kprof's CRDs installed, for tests. The binaries come from hack/install-tools.sh
// (make tools); a missing binary is a test failure that says how to install it.
package testenv

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// K8sVersion is the kube-apiserver version hack/install-kube.sh builds.
const K8sVersion = "1.36.3"

// AssetsDir returns the directory holding kube-apiserver and etcd: $KUBEBUILDER_ASSETS,
// else $KPROF_CACHE/k8s/<version>, else $HOME/.cache/kprof/k8s/<version>.
func AssetsDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	return filepath.Join(CacheDir(), "k8s", K8sVersion)
}

// CacheDir is where hack/ caches the tools: $KPROF_CACHE, default $HOME/.cache/kprof.
func CacheDir() string {
	if cache := os.Getenv("KPROF_CACHE"); cache != "" {
		return cache
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "kprof")
}

// RepoRoot returns the repository root (where go.mod is).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	env    *envtest.Environment
	// dir holds kube-apiserver's certificates and etcd's data, kept across
	// StopControlPlane and StartControlPlane; removed by Stop.
	dir string
}

// Option adjusts the control plane Start launches.
type Option func(*envtest.Environment)

// WithAPIServerFlags sets kube-apiserver flags (names without "--"), replacing envtest's value for
// a flag it also sets.
func WithAPIServerFlags(flags map[string]string) Option {
	return func(e *envtest.Environment) {
		args := e.ControlPlane.GetAPIServer().Configure()
		for name, value := range flags {
			args.Set(name, value)
		}
	}
}

// WithCRDPaths installs the CRDs in these files or directories too.
func WithCRDPaths(paths ...string) Option {
	return func(e *envtest.Environment) { e.CRDDirectoryPaths = append(e.CRDDirectoryPaths, paths...) }
}

// WithControlPlaneOutput sends kube-apiserver's and etcd's stdout and stderr to w (by default
// envtest discards them).
func WithControlPlaneOutput(w io.Writer) Option {
	return func(e *envtest.Environment) {
		apiServer := e.ControlPlane.GetAPIServer()
		apiServer.Out, apiServer.Err = w, w
		if e.ControlPlane.Etcd == nil {
			e.ControlPlane.Etcd = &envtest.Etcd{}
		}
		e.ControlPlane.Etcd.Out, e.ControlPlane.Etcd.Err = w, w
	}
}

// Start launches etcd and kube-apiserver and installs the CRDs from config/crd/bases.
func Start(opts ...Option) (*Env, error) {
	dir := AssetsDir()
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return nil, fmt.Errorf("envtest binary %s not found in %s (run `make tools` or hack/install-tools.sh): %w", bin, dir, err)
		}
	}
	e := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: dir,
		// envtest's default of 20 s for kube-apiserver and etcd to exit after SIGTERM
		// ran out in a CI run under stress-ng (test/docs, after helm and kubectl);
		// Stop returns as soon as they exit, so a longer bound costs nothing.
		ControlPlaneStopTimeout: 90 * time.Second,
	}
	for _, opt := range opts {
		opt(e)
	}
	// Directories of our own (envtest deletes the ones it makes when a process stops),
	// so StartControlPlane brings back the same certificates and the same data.
	state, err := os.MkdirTemp("", "kprof-testenv-")
	if err != nil {
		return nil, fmt.Errorf("control plane state directory: %w", err)
	}
	apiServer := e.ControlPlane.GetAPIServer()
	if e.ControlPlane.Etcd == nil {
		e.ControlPlane.Etcd = &envtest.Etcd{}
	}
	for _, d := range []*string{&apiServer.CertDir, &e.ControlPlane.Etcd.DataDir} {
		if *d != "" {
			continue // the caller's
		}
		if *d, err = os.MkdirTemp(state, ""); err != nil {
			os.RemoveAll(state)
			return nil, fmt.Errorf("control plane state directory: %w", err)
		}
	}
	cfg, err := e.Start()
	if err != nil {
		os.RemoveAll(state)
		return nil, fmt.Errorf("start envtest control plane from %s: %w", dir, err)
	}
	return &Env{Config: cfg, env: e, dir: state}, nil
}

// Stop shuts the control plane down.
func (e *Env) Stop() error {
	if e == nil || e.env == nil {
		return nil
	}
	err := e.env.Stop()
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
	return err
}

// StopControlPlane stops kube-apiserver, then etcd (SIGTERM, as a control plane
// upgrade or a node restart does). Clients see connection refused until
// StartControlPlane.
func (e *Env) StopControlPlane() error {
	if err := e.env.ControlPlane.GetAPIServer().Stop(); err != nil {
		return fmt.Errorf("stop kube-apiserver: %w", err)
	}
	if err := e.env.ControlPlane.Etcd.Stop(); err != nil {
		return fmt.Errorf("stop etcd: %w", err)
	}
	return nil
}

// StartControlPlane starts etcd and kube-apiserver again after StopControlPlane: the
// same ports, the same data, the same certificates, so Config and every client made
// from it work again, and returns once kube-apiserver is healthy.
func (e *Env) StartControlPlane() error {
	if err := e.env.ControlPlane.Etcd.Start(); err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	if err := e.env.ControlPlane.GetAPIServer().Start(); err != nil {
		return fmt.Errorf("start kube-apiserver: %w", err)
	}
	return nil
}
