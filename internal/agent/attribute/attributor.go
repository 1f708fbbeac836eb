package attribute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/logging"
	"github.com/kprof/kprof/internal/serviceid"
)

// Process is what /proc tells about a pid.
type Process struct {
	PID  int32
	Comm string
	// Exe is the target of /proc/PID/exe as the kernel reports it (with " (deleted)"
	// when the file was replaced); "" for kernel threads or when unreadable.
	Exe string
	// ContainerID is the 64-hex container ID from the cgroup path, "" for a host process.
	ContainerID string
	// Runtime is RuntimeContainerd, RuntimeCRIO or RuntimeDocker: from the cgroup path,
	// else from the pod status's container ID scheme when the pod is known, else "".
	Runtime string
	// PodUID is the pod UID from the cgroup path when present.
	PodUID string
}

// Defaults Config fills in.
const (
	DefaultProcRoot  = "/proc"
	DefaultCacheSize = 8192
	DefaultCacheTTL  = 30 * time.Second
)

// Config configures an Attributor.
type Config struct {
	// ProcRoot is where the host's procfs is mounted; "" means DefaultProcRoot.
	ProcRoot string
	// NodeName is this node's name: only pods with spec.nodeName equal to it are watched.
	// Required with a Client.
	NodeName string
	// Client reaches the API server; nil means no cluster: no pod labels.
	Client kubernetes.Interface
	// Logger; nil discards.
	Logger *slog.Logger
	// ResyncPeriod of the pod informer; 0 means no periodic resync.
	ResyncPeriod time.Duration
	// CacheSize bounds the number of processes cached; 0 means DefaultCacheSize.
	CacheSize int
	// CacheTTL is how long a cached process is trusted before /proc is read again (pids
	// are reused, processes change cgroup); 0 means DefaultCacheTTL.
	CacheTTL time.Duration
}

// SetDefaults fills in the zero fields; New calls it before Validate.
func (c *Config) SetDefaults() {
	check.Default(&c.ProcRoot, DefaultProcRoot)
	c.Logger = logging.OrDiscard(c.Logger)
	check.Default(&c.CacheSize, DefaultCacheSize)
	check.Default(&c.CacheTTL, DefaultCacheTTL)
}

// Validate reports every invalid field, each by name. Zero values are valid (defaults).
func (c Config) Validate() error {
	var errs []error
	if c.Client != nil && c.NodeName == "" {
		errs = append(errs, errors.New("NodeName: required when Client is set (pods are watched by spec.nodeName)"))
	}
	errs = append(errs,
		check.NotNegative("ResyncPeriod", c.ResyncPeriod),
		check.NotNegative("CacheSize", c.CacheSize),
		check.NotNegative("CacheTTL", c.CacheTTL))
	if c.ProcRoot != "" {
		if fi, err := os.Stat(c.ProcRoot); err != nil {
			errs = append(errs, fmt.Errorf("ProcRoot: %w", err))
		} else if !fi.IsDir() {
			errs = append(errs, fmt.Errorf("ProcRoot: %s is not a directory", c.ProcRoot))
		}
	}
	return errors.Join(errs...)
}

// Attributor maps pids to processes, containers and pods.
type Attributor struct {
	cfg   Config
	log   *slog.Logger
	procs *pidCache
	// informer is nil without a cluster.
	informer cache.SharedIndexInformer

	// listErr is the last failure to list or watch pods, until a pod event
	// shows the watch works again.
	listErr atomic.Pointer[listFailure]

	mu    sync.Mutex
	guard lifecycle.Guard
	run   lifecycle.Background // the informer
}

// New checks cfg and builds an Attributor. Nothing runs until Start.
func New(cfg Config) (*Attributor, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("attribute config: %w", err)
	}
	a := &Attributor{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "attribute"),
		procs: newPIDCache(cfg.CacheSize, cfg.CacheTTL),
	}
	if cfg.Client != nil {
		inf, err := newPodInformer(cfg.Client, cfg.NodeName, cfg.ResyncPeriod, a.log, a.listFailed)
		if err != nil {
			return nil, fmt.Errorf("pod informer for node %s: %w", cfg.NodeName, err)
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { a.listOK() },
			UpdateFunc: func(any, any) { a.listOK() },
			DeleteFunc: func(any) { a.listOK() },
		}); err != nil {
			return nil, fmt.Errorf("pod informer for node %s: %w", cfg.NodeName, err)
		}
		a.informer = inf
	}
	return a, nil
}

// Start starts the pod informer in the background and returns without waiting for it to
// sync (WaitForCacheSync does); ctx is not kept. Without a cluster there is nothing to
// start. Start may be called once.
func (a *Attributor) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.guard.Start(ctx); err != nil {
		return fmt.Errorf("start attributor: %w", err)
	}
	if a.informer == nil {
		return nil
	}
	a.run.Go(a.informer.RunWithContext)
	a.log.Info("watching pods", "node", a.cfg.NodeName)
	return nil
}

// WaitForCacheSync waits until the pod informer has listed this node's pods, or ctx ends.
// Without a cluster it returns at once. Labels works before (with fewer pods known).
func (a *Attributor) WaitForCacheSync(ctx context.Context) error {
	if a.informer == nil {
		return nil
	}
	if !cache.WaitForCacheSync(ctx.Done(), a.informer.HasSynced) {
		return fmt.Errorf("wait for pods of node %s: %w", a.cfg.NodeName, context.Cause(ctx))
	}
	return nil
}

// Shutdown stops the pod informer and waits for it until ctx ends. It is idempotent and
// safe without Start.
func (a *Attributor) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	a.guard.Shutdown()
	a.mu.Unlock()
	if err := a.run.Stop(ctx); err != nil {
		return fmt.Errorf("shut down pod informer: %w", err)
	}
	return nil
}

// Process returns what /proc says of pid, from the cache when read recently. A pid that
// has exited is an error (wrapping fs.ErrNotExist): the caller keeps what it saw before.
func (a *Attributor) Process(pid int32) (Process, error) {
	p, ok := a.procs.get(pid)
	if !ok {
		var err error
		if p, err = readProcess(a.cfg.ProcRoot, pid); err != nil {
			return Process{}, err
		}
		a.procs.put(p)
	}
	if p.Runtime == "" && p.ContainerID != "" && a.informer != nil {
		if known, ok := lookupPod(a.informer.GetIndexer(), p.ContainerID, ""); ok {
			p.Runtime = known.runtime
		}
	}
	return p, nil
}

// Labels returns the labels of a sample of pid: pid, comm, exe and container_id (those
// known, empty ones left out) and, when the informer knows the pod, pod, namespace,
// pod_uid and container (container only when matched by container ID) and the pod's
// service identity (serviceid.ForPod: service, service_namespace, ...). It reads /proc
// (or the cache) and the informer's local store; it never waits for the API server. A
// vanished pid gets only its pid label.
func (a *Attributor) Labels(pid int32) map[string]string {
	labels := map[string]string{profile.LabelPID: strconv.FormatInt(int64(pid), 10)}
	p, err := a.Process(pid)
	if err != nil {
		return labels
	}
	set := func(k, v string) {
		if v != "" {
			labels[k] = v
		}
	}
	set(profile.LabelComm, p.Comm)
	set(profile.LabelExe, p.Exe)
	set(profile.LabelContainerID, p.ContainerID)
	if a.informer == nil || (p.ContainerID == "" && p.PodUID == "") {
		return labels
	}
	known, ok := lookupPod(a.informer.GetIndexer(), p.ContainerID, p.PodUID)
	if !ok {
		return labels
	}
	set(profile.LabelPod, known.pod.Name)
	set(profile.LabelNamespace, known.pod.Namespace)
	set(profile.LabelPodUID, string(known.pod.UID))
	set(profile.LabelContainer, known.container)
	serviceid.ForPod(known.pod, known.container).PutLabels(labels)
	return labels
}

// LookupPod returns what the pod informer knows of the pod holding container containerID,
// else of the pod with UID podUID: its name and namespace, and the container's name when
// matched by container ID ("" when matched by pod UID only). ok is false when neither is
// known, and always without a cluster. It reads the informer's local store only.
func (a *Attributor) LookupPod(podUID, containerID string) (name, namespace, container string, ok bool) {
	if a.informer == nil || (podUID == "" && containerID == "") {
		return "", "", "", false
	}
	known, ok := lookupPod(a.informer.GetIndexer(), containerID, podUID)
	if !ok {
		return "", "", "", false
	}
	return known.pod.Name, known.pod.Namespace, known.container, true
}

// PodByUID returns the pod of this node with uid as the informer's local store holds it
// (slimmed: see slimPod), nil when unknown or without a cluster. The pod is shared: the
// caller must not modify it.
func (a *Attributor) PodByUID(uid string) *corev1.Pod {
	if a.informer == nil || uid == "" {
		return nil
	}
	objs, _ := a.informer.GetIndexer().ByIndex(podUIDIndex, uid)
	for _, obj := range objs {
		if pod, ok := obj.(*corev1.Pod); ok {
			return pod
		}
	}
	return nil
}

// PodsSynced reports whether the pod informer has listed this node's pods (true without a cluster).
func (a *Attributor) PodsSynced() bool {
	return a.informer == nil || a.informer.HasSynced()
}
