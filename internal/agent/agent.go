// Package agent runs the kprof node agent: it follows the profile collection
// configs of a directory, runs one collector per config, symbolizes and
// attributes their samples, and hands each interval to the router's consumers.
// It serves /metrics and /healthz.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/agent/attribute"
	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/consumer/datadog"
	"github.com/kprof/kprof/internal/agent/consumer/otlp"
	"github.com/kprof/kprof/internal/agent/nodethreshold"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/recorder"
	"github.com/kprof/kprof/internal/agent/router"
	"github.com/kprof/kprof/internal/agent/symbolize"
	"github.com/kprof/kprof/internal/agent/usage"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/logging"
)

// Defaults applied by Config.SetDefaults.
const (
	DefaultProcRoot         = "/proc"
	DefaultMetricsAddr      = ":9090"
	DefaultHealthAddr       = ":9091"
	DefaultCollectorTimeout = 10 * time.Second
	// DefaultPerfDataMaxFiles and DefaultPerfDataMaxBytes bound the perf.data
	// files kept: the oldest go first.
	DefaultPerfDataMaxFiles = 60
	DefaultPerfDataMaxBytes = 256 << 20
)

// Config configures an Agent.
type Config struct {
	// ConfigDir holds the profile collection configs (a mounted ConfigMap).
	// Required. While it is missing or holds no config file, the embedded
	// default config (collection.Default: cpu-clock at 19 Hz) runs, unless
	// NoDefault.
	ConfigDir string
	// NoDefault runs nothing while ConfigDir holds no config file, and fails
	// Start when ConfigDir is missing.
	NoDefault bool
	// NodeName is this node's name: a label of every event, and the node whose
	// pods are watched. Default: the host name.
	NodeName string
	// ClusterName is a label of every event; "" leaves it out.
	ClusterName string
	// Kubeconfig is the path of a kubeconfig; "" means the in-cluster config
	// when the agent runs in a pod, else no cluster (no pod labels).
	Kubeconfig string
	// NoCluster never talks to an API server: no pod labels. Excludes Kubeconfig.
	NoCluster bool
	// ProcRoot is where the host's procfs is mounted. Default /proc.
	ProcRoot string
	// MetricsAddr and HealthAddr are the listen addresses of /metrics and
	// /healthz; "0" disables one. When they are equal, one server serves both.
	MetricsAddr, HealthAddr string
	// EnableDebug registers the debug consumer: one line per event on DebugOut
	// (default stdout).
	EnableDebug bool
	DebugOut    io.Writer
	// EnablePerfData writes rotating perf.data files below PerfDataPath.
	EnablePerfData bool
	PerfDataPath   string
	// PerfDataMaxFiles and PerfDataMaxBytes bound the perf.data files kept
	// (the oldest are removed first; the newest is always kept). Defaults
	// DefaultPerfDataMaxFiles and DefaultPerfDataMaxBytes.
	PerfDataMaxFiles int
	PerfDataMaxBytes int64
	// EnablePprofFiles writes each event as a gzipped pprof file below
	// PprofFilesPath (what `go tool pprof` opens).
	EnablePprofFiles bool
	PprofFilesPath   string
	// EnableDatadog uploads pprof profiles to Datadog (through its Agent, or
	// agentless with Datadog.Site and an API key).
	EnableDatadog bool
	Datadog       datadog.Config
	// EnableOTLP exports profiles over OTLP/gRPC to OTLP.Endpoint.
	EnableOTLP bool
	OTLP       otlp.Config
	// OTLPMetricsEndpoint, when set, exports the usage readings and the agent's
	// counters as OTLP metrics there (with OTLP's TLS, headers and timeouts). It is
	// apart from the profiles: a profiling backend (Pyroscope) has no metrics service.
	OTLPMetricsEndpoint string
	// Consumers are registered with the router besides the configured ones
	// (a program embedding the agent, tests). The router owns them.
	Consumers []router.Consumer
	// MetricsConsumers receive the usage readings (per pod and container,
	// from cgroups) and the agent's counters, besides the configured ones.
	// Usage is read only when there is at least one metrics consumer, or NodeThresholds.
	MetricsConsumers []router.MetricsConsumer
	// CgroupRoot is where the host's cgroup filesystems are mounted. Default
	// /sys/fs/cgroup.
	CgroupRoot string
	// UsageInterval is how often usage is read. Default 1s.
	UsageInterval time.Duration
	// NodeThresholds evaluates the thresholds of the ProfilingConfigs (source agent,
	// auto or empty) on every usage reading of this node's pods and creates a
	// ProfileCapture on a crossing. It needs a cluster: without one it is off (logged).
	// Usage is then read even without metrics consumers.
	NodeThresholds bool
	// CollectorTimeout bounds starting or stopping one collector when a config
	// changes. Default 10s.
	CollectorTimeout time.Duration
	// RecorderWindow is how long the flight recorder keeps each pod's CPU
	// samples (internal/agent/recorder); 0 disables it (DefaultRecorderWindow
	// is the flag's default).
	RecorderWindow time.Duration
	// RecorderMaxBytes bounds the flight recorder's memory. Default
	// DefaultRecorderMaxBytes.
	RecorderMaxBytes int64
	// RecorderAddr is the listen address of the flight recorder's endpoint
	// (internal/flight); "0" disables it. Default DefaultRecorderAddr with a
	// recorder, none without; set without a recorder, it answers 503 (disabled).
	RecorderAddr string
	// RecorderTokenFile holds the bearer token the endpoint requires, read on
	// every request; "" or a missing file refuses every request (503).
	RecorderTokenFile string
	// Logger receives JSON logs; the agent's parts get named children
	// (attribute "logger"). Nil discards.
	Logger *slog.Logger
	// Registry receives the agent's metrics and is served on /metrics. Default:
	// a new registry.
	Registry *prometheus.Registry
}

// SetDefaults fills in the zero fields; NodeName becomes the host name.
func (c *Config) SetDefaults() {
	check.Default(&c.PerfDataMaxFiles, DefaultPerfDataMaxFiles)
	check.Default(&c.PerfDataMaxBytes, DefaultPerfDataMaxBytes)
	c.setRecorderDefaults()
	check.Default(&c.CgroupRoot, usage.DefaultRoot)
	check.Default(&c.UsageInterval, usage.DefaultInterval)
	check.Default(&c.CollectorTimeout, DefaultCollectorTimeout)
	if c.NodeName == "" {
		// An unknown host name leaves NodeName empty, for Validate to report.
		c.NodeName, _ = os.Hostname()
	}
	check.Default(&c.ProcRoot, DefaultProcRoot)
	check.Default(&c.MetricsAddr, DefaultMetricsAddr)
	check.Default(&c.HealthAddr, DefaultHealthAddr)
	if c.EnableDebug && c.DebugOut == nil {
		c.DebugOut = os.Stdout
	}
	c.Logger = logging.OrDiscard(c.Logger)
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
}

// Validate reports every bad field by name; zero values other than ConfigDir's and
// NodeName's are valid (SetDefaults fills them).
func (c *Config) Validate() error {
	var errs []error
	if c.ConfigDir == "" {
		errs = append(errs, errors.New("ConfigDir: required"))
	}
	if c.NodeName == "" {
		errs = append(errs, errors.New("NodeName: required (SetDefaults takes the host name, which is unknown)"))
	}
	if c.NoCluster && c.Kubeconfig != "" {
		errs = append(errs, errors.New("Kubeconfig: set together with NoCluster: choose one"))
	}
	errs = append(errs, c.validateConsumers()...)
	errs = append(errs, c.validateRecorder()...)
	if c.UsageInterval != 0 && c.UsageInterval < usage.MinInterval {
		errs = append(errs, fmt.Errorf("UsageInterval: must be at least %s, got %s", usage.MinInterval, c.UsageInterval))
	}
	errs = append(errs, check.NotNegative("CollectorTimeout", c.CollectorTimeout))
	return errors.Join(errs...)
}

// validateConsumers reports the bad fields of the built-in and the given consumers.
func (c *Config) validateConsumers() []error {
	var errs []error
	if c.EnablePerfData && c.PerfDataPath == "" {
		errs = append(errs, errors.New("PerfDataPath: required with EnablePerfData"))
	}
	errs = append(errs, check.NotNegative("PerfDataMaxFiles", c.PerfDataMaxFiles), check.NotNegative("PerfDataMaxBytes", c.PerfDataMaxBytes))
	if c.EnablePprofFiles && c.PprofFilesPath == "" {
		errs = append(errs, errors.New("PprofFilesPath: required with EnablePprofFiles"))
	}
	if c.EnableOTLP && c.OTLP.Endpoint == "" {
		errs = append(errs, errors.New("OTLP.Endpoint: required with EnableOTLP"))
	}
	for i, cons := range c.Consumers {
		if cons == nil {
			errs = append(errs, fmt.Errorf("Consumers[%d]: nil", i))
		}
	}
	for i, cons := range c.MetricsConsumers {
		if cons == nil {
			errs = append(errs, fmt.Errorf("MetricsConsumers[%d]: nil", i))
		}
	}
	return errs
}

// Agent is the node agent. New builds it, Start runs it, Shutdown stops it.
type Agent struct {
	cfg Config
	log *slog.Logger

	metrics *metrics
	router  *router.Fanout[*profile.Event]
	// metricsRouter carries usage readings and the agent's counters to the
	// metrics consumers; nil when there are none.
	metricsRouter *router.Fanout[*profile.Metrics]
	attributor    *attribute.Attributor
	symbolizer    *symbolize.Symbolizer
	usage         *usage.Reader             // nil without metrics consumers and node thresholds
	thresholds    *nodethreshold.Thresholds // nil unless NodeThresholds with a cluster
	watcher       *collection.Watcher
	supervisor    *supervisor
	servers       *servers
	recorder      *recorder.Recorder // nil when disabled

	healthy atomic.Bool // the watcher and the router run

	lifeMu   sync.Mutex // Start and Shutdown
	guard    lifecycle.Guard
	stopSync context.CancelFunc // ends the wait for the pod cache
}

// New fills in cfg's defaults, validates it and builds the agent's parts; nothing
// runs until Start.
func New(cfg Config) (*Agent, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	return newAgent(cfg, newCollector)
}

// newAgent builds an agent whose collectors come from factory.
func newAgent(cfg Config, factory collectorFactory) (*Agent, error) {
	base := cfg.Logger
	a := &Agent{cfg: cfg, log: base.With("logger", "agent")}

	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	a.metrics = m
	rm, err := router.NewMetrics(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.router, err = router.New(router.Config{Logger: base.With("logger", "router"), Metrics: rm})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := a.registerConsumers(cfg, base); err != nil {
		return nil, err
	}

	client, restConfig, err := kubeClient(cfg, a.log)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.attributor, err = attribute.New(attribute.Config{
		ProcRoot: cfg.ProcRoot,
		NodeName: cfg.NodeName,
		Client:   client,
		Logger:   base.With("logger", "attribute"),
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := a.buildThresholds(cfg, restConfig); err != nil {
		return nil, err
	}
	if err := a.buildMetricsPath(cfg, rm); err != nil {
		return nil, err
	}
	// The symbolizer names itself (logger=symbolize).
	a.symbolizer, err = symbolize.New(symbolize.Config{
		ProcRoot: cfg.ProcRoot,
		Logger:   base,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := a.buildCollectors(cfg, factory, base); err != nil {
		return nil, err
	}
	flightHandler, err := a.newFlightHandler(cfg)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.servers = newServers(serversConfig{
		metrics: cfg.MetricsAddr, health: cfg.HealthAddr, flight: cfg.RecorderAddr,
		reg: cfg.Registry, check: a.healthz, flightHandler: flightHandler, log: base.With("logger", "http"),
	})
	return a, nil
}

// buildCollectors builds the supervisor of the per-config collectors (from factory) and the
// watcher of the config directory that starts and stops them.
func (a *Agent) buildCollectors(cfg Config, factory collectorFactory, base *slog.Logger) error {
	a.supervisor = newSupervisor(supervisorConfig{
		factory: factory,
		env: collectorEnv{
			node:       cfg.NodeName,
			cluster:    cfg.ClusterName,
			symbolizer: a.symbolizer,
			labeler:    a.attributor,
			logger:     base.With("logger", "collector"),
			exclude:    []uint32{uint32(os.Getpid())},
			procRoot:   cfg.ProcRoot,
			registry:   cfg.Registry,
		},
		publish: a.publish,
		timeout: cfg.CollectorTimeout,
		metrics: a.metrics,
		log:     a.log,
	})
	wcfg := collection.WatcherConfig{
		Dir:      cfg.ConfigDir,
		Logger:   base.With("logger", "config"),
		OnChange: a.supervisor.apply,
	}
	if !cfg.NoDefault {
		d := collection.Default()
		wcfg.Default = &d
	}
	var err error
	if a.watcher, err = collection.NewWatcher(wcfg); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// Start listens on the HTTP addresses, starts the router, the pod watch and the
// config watcher, and one collector per config found. A collector that fails
// is logged and counted, never an error of Start. Start returns once the
// configs already in the directory are applied; it does not keep ctx.
func (a *Agent) Start(ctx context.Context) error {
	a.lifeMu.Lock()
	defer a.lifeMu.Unlock()
	if err := a.guard.Start(ctx); err != nil {
		return fmt.Errorf("agent: start: %w", err)
	}
	if err := a.servers.listen(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.servers.serve()
	if err := a.router.Start(ctx); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if a.metricsRouter != nil {
		if err := a.metricsRouter.Start(ctx); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	if err := a.attributor.Start(ctx); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	syncCtx, cancel := context.WithCancel(context.Background())
	a.stopSync = cancel
	go func() {
		if err := a.attributor.WaitForCacheSync(syncCtx); err != nil {
			if syncCtx.Err() == nil {
				a.log.Warn("pod cache did not sync; events lack pod labels until it does", "err", err)
			}
			return
		}
		a.log.Debug("pod cache synced", "node", a.cfg.NodeName)
	}()
	if err := a.watcher.Start(ctx); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if a.thresholds != nil {
		if err := a.thresholds.Start(ctx); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	if a.usage != nil {
		if err := a.usage.Start(ctx); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	a.healthy.Store(true)
	a.log.Info("agent started", "config_dir", a.cfg.ConfigDir, "node", a.cfg.NodeName, "cluster", a.cfg.ClusterName,
		"metrics_addr", a.servers.metricsAddr(), "health_addr", a.servers.healthAddr(), "recorder_addr", a.servers.flightAddr(),
		"recorder_window", a.cfg.RecorderWindow, "collectors", a.supervisor.runningNames())
	return nil
}

// Shutdown stops following the configs, stops every collector (each flushes a
// final interval), lets the router's consumers drain until ctx is done, and
// stops the pod watch and the HTTP servers. Errors are joined. It is
// idempotent and safe without Start.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.lifeMu.Lock()
	defer a.lifeMu.Unlock()
	if !a.guard.Shutdown() {
		return nil
	}
	running := a.healthy.Swap(false) // Start completed

	var errs []error
	if err := a.watcher.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if a.usage != nil {
		if err := a.usage.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("usage: %w", err))
		}
	}
	if a.thresholds != nil {
		if err := a.thresholds.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := a.supervisor.shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if a.metricsRouter != nil && running {
		// A last reading once the collectors have flushed, so every sample
		// taken is counted in what the metrics consumers receive.
		a.publishUsage(time.Now())
	}
	// Both routers drain at once: a consumer that hangs until the deadline
	// (an unreachable intake) holds back neither the other consumers nor
	// the other router.
	routerErrs := make(chan error, 2)
	go func() { routerErrs <- a.router.Shutdown(ctx) }()
	if a.metricsRouter != nil {
		go func() { routerErrs <- a.metricsRouter.Shutdown(ctx) }()
	} else {
		routerErrs <- nil
	}
	for range 2 {
		if err := <-routerErrs; err != nil {
			errs = append(errs, err)
		}
	}
	if a.stopSync != nil {
		a.stopSync()
	}
	if err := a.attributor.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := a.servers.shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	if err != nil {
		a.log.Error("agent stopped with errors", "err", err)
	} else if a.guard.Started() {
		a.log.Info("agent stopped")
	}
	return err
}

// MetricsAddr and HealthAddr are the addresses the HTTP servers listen on
// after Start ("" when disabled or not started).
func (a *Agent) MetricsAddr() string { return a.servers.metricsAddr() }
func (a *Agent) HealthAddr() string  { return a.servers.healthAddr() }

func (a *Agent) healthz() error {
	if !a.healthy.Load() {
		return errors.New("the config watcher and router are not running")
	}
	return nil
}

// buildMetricsPath registers the metrics consumers with a metrics router and
// builds the usage reader that feeds it; without metrics consumers, neither.
func (a *Agent) buildMetricsPath(cfg Config, rm *router.Metrics) error {
	consumers := append([]router.MetricsConsumer(nil), cfg.MetricsConsumers...)
	if cfg.OTLPMetricsEndpoint != "" {
		ocfg := cfg.OTLP
		ocfg.Endpoint = cfg.OTLPMetricsEndpoint
		if ocfg.Logger == nil {
			ocfg.Logger = cfg.Logger.With("logger", "otlp")
		}
		om, err := otlp.NewMetrics(ocfg)
		if err != nil {
			return fmt.Errorf("agent: OTLP metrics consumer: %w", err)
		}
		consumers = append(consumers, om)
	}
	if len(consumers) == 0 && a.thresholds == nil {
		return nil
	}
	if len(consumers) > 0 {
		var err error
		a.metricsRouter, err = router.NewMetricsRouter(router.Config{Logger: cfg.Logger.With("logger", "router"), Metrics: rm})
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		for _, c := range consumers {
			if err := a.metricsRouter.Register(c); err != nil {
				return fmt.Errorf("agent: %w", err)
			}
		}
	}
	var err error
	a.usage, err = usage.New(usage.Config{
		Root:     cfg.CgroupRoot,
		Interval: cfg.UsageInterval,
		Publish:  a.publishReading,
		Labels:   eventLabels(cfg),
		Pods:     a.attributor,
		Extra:    a.counterPoints,
		Logger:   cfg.Logger.With("logger", "usage"),
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// publishUsage publishes one reading now, outside the reader's loop.
func (a *Agent) publishUsage(now time.Time) {
	m, err := a.usage.ReadOnce(now)
	if err != nil {
		a.log.Warn("final usage reading failed", "err", err)
		return
	}
	a.metricsRouter.Publish(m)
}

// eventLabels are the labels of every event and reading: node, and cluster
// when named.
func eventLabels(cfg Config) map[string]string {
	l := map[string]string{profile.LabelNode: cfg.NodeName}
	if cfg.ClusterName != "" {
		l[profile.LabelCluster] = cfg.ClusterName
	}
	return l
}
