package operator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/ui"
)

// uiShutdownGrace bounds the UI's graceful stop (the views of a large profile take a while).
const uiShutdownGrace = 5 * time.Second

// UIOptions configure the web UI the operator serves: kprof ui's pages (the list, the
// per-service timeline, pprof's flame graph) over the profiles it stores, read-only.
// The UI runs on every replica, leader or not: each serves what its own pod holds.
type UIOptions struct {
	// Listen is the HOST:PORT of the UI (an empty host is every interface); empty turns
	// the UI off.
	Listen string
	// Listener is served instead of Listen (tests ask the kernel for a port).
	Listener net.Listener
	// Store is what the UI lists: empty is ProfilesDir (the profiles of configs without
	// s3Config), else a directory or s3://BUCKET/PREFIX, read with the AWS default
	// credential chain (IRSA, AWS_* variables).
	Store string
	// S3Endpoint is the S3-compatible endpoint of an s3:// Store; empty means AWS.
	S3Endpoint string
	// S3Region is the bucket's region; empty means the AWS configuration chain.
	S3Region string
	// MaxProfileBytes bounds a profile opened for viewing (default ui.DefaultMaxProfileBytes).
	MaxProfileBytes int64
}

// Enabled tells whether the operator serves the UI.
func (u UIOptions) Enabled() bool { return u.Listen != "" || u.Listener != nil }

// Check reports every bad field, each called name(field) for field Listen, Store,
// S3Endpoint, S3Region or MaxProfileBytes: cmd/kprof names its flags.
func (u UIOptions) Check(name func(field string) string) error {
	var errs []error
	if !u.Enabled() {
		for _, f := range []struct {
			field string
			set   bool
		}{{"Store", u.Store != ""}, {"S3Endpoint", u.S3Endpoint != ""}, {"S3Region", u.S3Region != ""}, {"MaxProfileBytes", u.MaxProfileBytes != 0}} {
			if f.set {
				errs = append(errs, fmt.Errorf("%s: needs %s (the web UI is off)", name(f.field), name("Listen")))
			}
		}
		return errors.Join(errs...)
	}
	if u.Listener == nil {
		if err := ui.CheckListen(u.Listen); err != nil {
			errs = append(errs, fmt.Errorf("%s %w", name("Listen"), err))
		}
	}
	if u.MaxProfileBytes < 0 {
		errs = append(errs, fmt.Errorf("%s: must be positive, got %d", name("MaxProfileBytes"), u.MaxProfileBytes))
	}
	isS3 := strings.HasPrefix(u.Store, "s3://")
	if bucket, _, _ := strings.Cut(strings.TrimPrefix(u.Store, "s3://"), "/"); isS3 && bucket == "" {
		errs = append(errs, fmt.Errorf("%s %q: no bucket (want s3://BUCKET/PREFIX)", name("Store"), u.Store))
	}
	for _, f := range []struct{ field, value string }{{"S3Endpoint", u.S3Endpoint}, {"S3Region", u.S3Region}} {
		if f.value != "" && !isS3 {
			errs = append(errs, fmt.Errorf("%s: needs an s3:// %s", name(f.field), name("Store")))
		}
	}
	return errors.Join(errs...)
}

// setupUI adds the UI server to mgr, on every replica.
func setupUI(mgr manager.Manager, o Options) error {
	u := o.UI
	store := u.Store
	if store == "" {
		// The operator writes here; created now, the list is empty rather than an error
		// until the first capture.
		if err := os.MkdirAll(o.ProfilesDir, 0o755); err != nil {
			return fmt.Errorf("ui: profiles directory: %w", err)
		}
		store = o.ProfilesDir
	}
	ctx, cancel := context.WithTimeout(context.Background(), index.DefaultTimeout)
	defer cancel()
	x, err := index.New(ctx, index.Config{Store: store, S3Endpoint: u.S3Endpoint, S3Region: u.S3Region})
	if err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	if u.Store == "" {
		pod, _ := os.Hostname() // the pod's name in a pod
		x = replicaIndex{Index: x, pod: pod, elected: mgr.Elected()}
	}
	log := managerLog(mgr).With("logger", "ui")
	// LocalFiles stays off: the UI is reached from other machines, and a profile may name
	// any path of the operator's container.
	h, err := ui.New(ui.Config{Index: x, Logger: log, MaxProfileBytes: u.MaxProfileBytes})
	if err != nil {
		return err
	}
	srv, err := ui.NewServer(ui.ServerConfig{Listen: u.Listen, Listener: u.Listener, Handler: h, Logger: log})
	if err != nil {
		return err
	}
	listen := u.Listen
	if u.Listener != nil {
		listen = u.Listener.Addr().String()
	}
	log.Info("serving the web UI", "listen", listen, "store", store)
	if err := mgr.Add(lifecycle.Runnable(srv, lifecycle.RunnableOptions{ShutdownGrace: uiShutdownGrace, EveryReplica: true})); err != nil {
		return fmt.Errorf("add ui: %w", err)
	}
	return nil
}

// replicaIndex is the profiles directory of one operator pod. With several replicas
// only the leader captures, into its own pod's directory, and each replica's UI lists
// its own pod's files: the store's name says which pod the page shows and whether it
// leads, so a page listing nothing says why.
type replicaIndex struct {
	index.Index
	pod     string
	elected <-chan struct{} // closed once this replica leads (at once without leader election)
}

func (x replicaIndex) String() string {
	s := x.Index.String()
	if x.pod != "" {
		s += " in pod " + x.pod
	}
	select {
	case <-x.elected:
		return s + " (the replica that captures)"
	default:
		return s + " (a standby replica: the leader captures, into its own pod; port-forward to the leader's pod to see those profiles)"
	}
}
