// Package operator wires the capture engine and the ProfilingConfig reconciler into a
// controller-runtime manager. The kprof binary and the envtest suites both use it.
package operator

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/controller"
	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/logging"
	"github.com/kprof/kprof/internal/portforward"
	"github.com/kprof/kprof/internal/storage/fs"
	"github.com/kprof/kprof/internal/storage/spool"
	"github.com/kprof/kprof/internal/threshold"
	"github.com/kprof/kprof/internal/ui"
)

// Options configure the operator's capture side.
type Options struct {
	// ProfilesDir holds profiles of configs without remote storage.
	ProfilesDir string
	// SpoolDir holds profiles waiting for upload to a remote store (default ProfilesDir/../spool).
	SpoolDir string
	// SpoolMaxBytes bounds the spool (default 1 GiB); the oldest profiles are evicted, counted and reported.
	SpoolMaxBytes int64
	// SpoolMaxAge evicts spooled profiles older than this (default 24h).
	SpoolMaxAge time.Duration
	// ProfilesMaxAge prunes profiles below ProfilesDir captured longer ago than this;
	// 0 is no bound (the binary's flag defaults to DefaultProfilesMaxAge).
	ProfilesMaxAge time.Duration
	// ProfilesMaxBytes prunes the oldest profiles below ProfilesDir until the rest fit;
	// 0 is no bound (the binary's flag defaults to DefaultProfilesMaxBytes).
	ProfilesMaxBytes int64
	// ProfilesPruneInterval is the time between retention sweeps of ProfilesDir
	// (default 1m); writes that may exceed a byte bound trigger one sooner.
	ProfilesPruneInterval time.Duration
	// SecretsNamespace holds the Secrets that s3Config.credentialsSecretRef names (the operator's namespace).
	SecretsNamespace string
	// MaxConcurrent captures across all pods (default 16).
	MaxConcurrent int
	// MaxProfileBytes is the largest profile accepted (default 64 MiB).
	MaxProfileBytes int64
	// RequestTimeout of one profile request; CPU profiles get their duration on top (default 30s).
	RequestTimeout time.Duration
	// ShutdownGrace lets in-flight captures finish on shutdown before they are cancelled (default 25s).
	ShutdownGrace time.Duration
	// Registerer receives the capture metrics (controller-runtime's registry in the binary).
	Registerer prometheus.Registerer
	// HTTPClient overrides the engine's client (tests).
	HTTPClient *http.Client
	// PortForward captures through the API server's pods/portforward instead of the
	// pod IP: for an operator running outside the cluster network.
	PortForward bool
	// RESTConfig is needed with PortForward and for threshold triggers (metrics.k8s.io).
	RESTConfig *rest.Config
	// DisableThresholds turns threshold-triggered capture off (no metrics.k8s.io reads).
	DisableThresholds bool
	// MetricsTimeout bounds one metrics.k8s.io request (default 10s).
	MetricsTimeout time.Duration
	// StatusInterval gathers capture results this long before a config's status is
	// written (default controller.DefaultStatusInterval); EventInterval is the time
	// between a config's summary Events (default controller.DefaultEventInterval).
	StatusInterval time.Duration
	EventInterval  time.Duration
	// UI is the web UI over the stored profiles (off unless UI.Listen is set).
	UI UIOptions

	// AgentNamespace is where the kprof agent pods run (default SecretsNamespace).
	AgentNamespace string
	// AgentSelector selects the agent pods (default controller.DefaultAgentSelector).
	AgentSelector string
	// AgentRecorderPort is the agents' flight recorder port (default 9092).
	AgentRecorderPort int
	// AgentTokenSecret names the Secret (in SecretsNamespace, key "token") with the
	// flight recorder's token; the operator creates it when missing (default kprof-recorder-token).
	AgentTokenSecret string
	// RecorderWindow is how many seconds before a capture's request the eBPF profile
	// asked from the agent starts (default 30s).
	RecorderWindow time.Duration
	// MaxCapturesPerNamespace bounds the finished ProfileCaptures kept per namespace (default 100).
	MaxCapturesPerNamespace int
	// Flight overrides the client of the agents' flight recorders (tests).
	Flight controller.FlightFetcher
}

// Defaults of the flight recorder wiring.
const (
	DefaultAgentTokenSecret = "kprof-recorder-token"
	// TokenSecretKey is the key of the token in the AgentTokenSecret.
	TokenSecretKey = "token"
)

// Defaults of the retention of the profiles directory (the binary's flags). They fit
// the chart's profiles emptyDir (sizeLimit 4Gi): 1 GiB stays free for the temporary
// files of 16 concurrent captures of up to 64 MiB, and for what kubelet counts besides.
const (
	DefaultProfilesMaxAge   = 7 * 24 * time.Hour
	DefaultProfilesMaxBytes = 3 << 30
)

// SetDefaults fills in the zero fields: the spool beside the profiles directory, its
// bounds, the prune interval, the shutdown grace, a registry, the agents' wiring and the
// UI's size limit.
func (o *Options) SetDefaults() {
	if o.SpoolDir == "" && o.ProfilesDir != "" {
		o.SpoolDir = filepath.Join(filepath.Dir(filepath.Clean(o.ProfilesDir)), "spool")
	}
	check.Default(&o.SpoolMaxBytes, 1<<30)
	check.Default(&o.SpoolMaxAge, 24*time.Hour)
	check.Default(&o.ProfilesPruneInterval, fs.DefaultPruneInterval)
	check.Default(&o.ShutdownGrace, 25*time.Second)
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	o.setAgentDefaults()
	if o.UI.Enabled() {
		check.Default(&o.UI.MaxProfileBytes, ui.DefaultMaxProfileBytes)
	}
}

// Validate reports the first bad field; zero values are valid where SetDefaults fills
// them or where 0 means no bound.
func (o *Options) Validate() error {
	switch {
	case o.ProfilesDir == "":
		return errors.New("profiles directory: must be set")
	case o.SpoolMaxBytes < 0:
		return fmt.Errorf("spool max bytes: must be positive, got %d", o.SpoolMaxBytes)
	case o.SpoolMaxAge < 0:
		return fmt.Errorf("spool max age: must be positive, got %s", o.SpoolMaxAge)
	case o.ProfilesMaxAge < 0:
		return fmt.Errorf("profiles max age: must not be negative (0 is no bound), got %s", o.ProfilesMaxAge)
	case o.ProfilesMaxBytes < 0:
		return fmt.Errorf("profiles max bytes: must not be negative (0 is no bound), got %d", o.ProfilesMaxBytes)
	case o.ProfilesPruneInterval < 0:
		return fmt.Errorf("profiles prune interval: must be positive, got %s", o.ProfilesPruneInterval)
	case inside(o.SpoolDir, o.ProfilesDir):
		return fmt.Errorf("spool directory %s: must not be inside the profiles directory %s (its retention would delete spooled profiles)", o.SpoolDir, o.ProfilesDir)
	case o.SecretsNamespace == "":
		return errors.New("secrets namespace: must be set (the operator's namespace)")
	}
	// The periods whose zero means their default; the first negative one is named.
	if err := cmp.Or(
		check.NotNegative("shutdown grace period", o.ShutdownGrace),
		check.NotNegative("status interval", o.StatusInterval),
		check.NotNegative("event interval", o.EventInterval),
	); err != nil {
		return err
	}
	if err := o.validateAgents(); err != nil {
		return err
	}
	return o.UI.Check(func(field string) string { return "UI." + field })
}

// inside reports whether dir is below or equal to parent.
func inside(dir, parent string) bool {
	a, errA := filepath.Abs(dir)
	b, errB := filepath.Abs(parent)
	if errA != nil || errB != nil {
		return false
	}
	rel, err := filepath.Rel(b, a)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// NewScheme returns a scheme with the built-in types and profiling.io/v1alpha1.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(profilingv1alpha1.AddToScheme(s))
	return s
}

// Setup adds the capture engine and the ProfilingConfig controller to mgr. Both run on
// the elected leader only; the engine drains in-flight captures on shutdown. With
// o.UI enabled it adds the web UI too, which runs on every replica.
//
// What the engine, the stores and the threshold watcher report goes to the
// controller's Feedback, built first; the reconcilers come last, with all they use.
func Setup(mgr manager.Manager, o Options) error {
	o.SetDefaults()
	if err := o.Validate(); err != nil {
		return fmt.Errorf("operator options: %w", err)
	}
	recorder := mgr.GetEventRecorder("kprof-operator")
	fb, err := controller.NewFeedback(controller.FeedbackConfig{
		Recorder: recorder, Reader: mgr.GetAPIReader(), Writer: mgr.GetClient(),
		StatusInterval: o.StatusInterval, EventInterval: o.EventInterval, Logger: managerLog(mgr).With("logger", "captures"),
	})
	if err != nil {
		return err
	}
	restCfg := o.RESTConfig
	if restCfg == nil {
		restCfg = mgr.GetConfig()
	}
	stores, err := setupStores(mgr, o, fb)
	if err != nil {
		return err
	}
	engine, err := setupEngine(mgr, o, restCfg, fb)
	if err != nil {
		return err
	}
	var thresholds controller.ThresholdWatcher // nil: off
	if !o.DisableThresholds {
		if thresholds, err = setupThresholds(mgr, o, restCfg, fb); err != nil {
			return err
		}
	}
	rec, err := controller.NewProfilingConfigReconciler(controller.ProfilingConfigDeps{
		Client: mgr.GetClient(), Scheduler: engine, Stores: stores, Thresholds: thresholds,
		Agents: o.agents(mgr.GetClient()), Feedback: fb, PortForward: o.PortForward,
	})
	if err != nil {
		return err
	}
	if err := rec.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up ProfilingConfig controller: %w", err)
	}
	if err := setupCaptures(mgr, o, recorder, engine, stores); err != nil {
		return err
	}
	if o.UI.Enabled() {
		return setupUI(mgr, o)
	}
	return nil
}

// setupStores adds the stores of the configs' profiles (below ProfilesDir, or S3
// behind a spool), their retention and the drain of what a standby's spool holds.
func setupStores(mgr manager.Manager, o Options, fb *controller.Feedback) (*controller.Stores, error) {
	spoolMetrics, err := spool.NewMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register spool metrics: %w", err)
	}
	pruner, err := newPruner(mgr, o)
	if err != nil {
		return nil, err
	}
	var drain *spoolDrain
	stores, err := controller.NewStores(controller.StoresConfig{
		ProfilesDir:      o.ProfilesDir,
		SpoolDir:         o.SpoolDir,
		SpoolMaxBytes:    o.SpoolMaxBytes,
		SpoolMaxAge:      o.SpoolMaxAge,
		SecretsNamespace: o.SecretsNamespace,
		Secrets:          mgr.GetAPIReader(),
		SpoolMetrics:     spoolMetrics,
		Pruner:           pruner,
		Logger:           managerLog(mgr),
		// A standby replica drains its own spool (spoolDrain), before its reconciler
		// runs: uploads of configs the reconciler does not track (yet) are counted by
		// the drain, and a reconciler that does not run must not be woken.
		OnUploaded: func(group string) {
			if !drain.leader() || !fb.Uploaded(group) {
				drain.uploaded(group)
			}
		},
		OnEvicted: fb.Evicted,
		OnHealth: func(groups []string) {
			if drain.leader() {
				fb.StoreHealthChanged(groups)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create stores: %w", err)
	}
	drain = newSpoolDrain(o.SpoolDir, stores, mgr.GetAPIReader(), mgr.GetClient(), mgr.Elected(), managerLog(mgr).With("logger", "spool-drain"))
	if err := mgr.Add(drain); err != nil {
		return nil, fmt.Errorf("add the spool drain: %w", err)
	}
	return stores, nil
}

// setupEngine adds the capture engine: it starts and stops with the manager, letting
// in-flight captures finish for o.ShutdownGrace.
func setupEngine(mgr manager.Manager, o Options, restCfg *rest.Config, fb *controller.Feedback) (*capture.Engine, error) {
	metrics, err := capture.NewMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register capture metrics: %w", err)
	}
	httpClient := o.HTTPClient
	if o.PortForward && httpClient == nil {
		httpClient, err = portforward.NewHTTPClient(portforward.Config{RESTConfig: restCfg, Logger: managerLog(mgr).With("logger", "portforward")})
		if err != nil {
			return nil, fmt.Errorf("port-forward capture: %w", err)
		}
	}
	engine, err := capture.New(capture.Config{
		MaxConcurrent:   o.MaxConcurrent,
		MaxProfileBytes: o.MaxProfileBytes,
		RequestTimeout:  o.RequestTimeout,
		HTTPClient:      httpClient,
		OnResult:        fb.OnResult,
		Metrics:         metrics,
		Logger:          managerLog(mgr),
		// The reconciler logs a pod's failures when they start and when they end.
		QuietFailures: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create capture engine: %w", err)
	}
	if err := mgr.Add(lifecycle.Runnable(engine, lifecycle.RunnableOptions{ShutdownGrace: o.ShutdownGrace})); err != nil {
		return nil, fmt.Errorf("add capture engine: %w", err)
	}
	return engine, nil
}

// newPruner adds the retention of the profiles directory: it runs on the leader,
// which is the only writer.
func newPruner(mgr manager.Manager, o Options) (*fs.Pruner, error) {
	metrics, err := fs.NewPruneMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	pruner, err := fs.NewPruner(fs.PrunerConfig{
		Dir:      o.ProfilesDir,
		Limits:   fs.Limits{MaxAge: o.ProfilesMaxAge, MaxBytes: o.ProfilesMaxBytes},
		Interval: o.ProfilesPruneInterval,
		Metrics:  metrics,
		Logger:   managerLog(mgr).With("logger", "retention"),
	})
	if err != nil {
		return nil, fmt.Errorf("profiles retention: %w", err)
	}
	if err := mgr.Add(lifecycle.Runnable(pruner, lifecycle.RunnableOptions{ShutdownGrace: o.ShutdownGrace})); err != nil {
		return nil, fmt.Errorf("add profiles retention: %w", err)
	}
	return pruner, nil
}

// setupThresholds adds the threshold watcher: it reads pod usage from metrics.k8s.io
// through the API server and triggers captures of pods that cross their thresholds.
func setupThresholds(mgr manager.Manager, o Options, restCfg *rest.Config, fb *controller.Feedback) (*threshold.Watcher, error) {
	source, err := threshold.NewMetricsSource(restCfg, o.MetricsTimeout)
	if err != nil {
		return nil, fmt.Errorf("metrics.k8s.io client: %w", err)
	}
	metrics, err := threshold.NewMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register trigger metrics: %w", err)
	}
	watcher, err := threshold.New(threshold.Config{
		Source:    source,
		Capturer:  controller.NewCaptureCreator(mgr.GetClient()),
		Cooldowns: fb.Cooldowns(),
		Reporter:  fb.ThresholdReporter(),
		Metrics:   metrics,
		Logger:    managerLog(mgr),
	})
	if err != nil {
		return nil, fmt.Errorf("create threshold watcher: %w", err)
	}
	return watcher, mgr.Add(lifecycle.Runnable(watcher, lifecycle.RunnableOptions{ShutdownGrace: o.ShutdownGrace}))
}

// managerLog is the seam between the two logging APIs: controller-runtime hands out
// logr (reconcilers keep log.FromContext(ctx)), kprof's components take slog. The
// capture engine, the spool and the trigger watcher name themselves, so they get
// the manager's logger unnamed (a second name would repeat the "logger" key).
func managerLog(mgr manager.Manager) *slog.Logger { return logging.FromLogr(mgr.GetLogger()) }
