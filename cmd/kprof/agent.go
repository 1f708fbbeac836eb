package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kprof/kprof/internal/agent"
	"github.com/kprof/kprof/internal/agent/collection"
)

type agentFlags struct {
	cfg                agent.Config
	shutdownTimeout    time.Duration
	defaultConfig      bool
	printDefaultConfig bool
}

func newAgentCmd() *cobra.Command {
	var o agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: eBPF CPU profiling of every process on the node, by the configs of a directory",
		Long: `Agent samples every process on its node with an eBPF program on a perf event per CPU, turns
the stack counts into a profile every interval (symbolized on the node, labelled with the
process, container and, from the API server, pod, namespace and container) and hands each
profile to the enabled consumers: a one-line summary on stdout (--enable-debug-consumer),
perf.data files, pprof files, Datadog, OTLP.

What to collect comes from the ProfileCollectionConfig files of --config-dir (one collector
per config name; the directory is watched, so a mounted ConfigMap's updates apply without a
restart). It needs root, or CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE and CAP_SYSLOG, and the
host's procfs and cgroup filesystems (--proc-root, --cgroup-root) when run in a pod; the
DaemonSet of the chart (agent.enabled) and of config/agent sets that up.`,
		Example: `  # On this machine, without a cluster: CPU profiles as perf.data and pprof files.
  sudo kprof agent --config-dir ./agent-configs --no-cluster \
    --enable-profiling-perfdata --profiling-perfdata-path ./perfdata \
    --enable-profiling-pprof --profiling-pprof-path ./pprof

  # With pod labels from the current kubeconfig context, profiles sent to an OpenTelemetry Collector:
  sudo kprof agent --config-dir ./agent-configs --kubeconfig ~/.kube/config --node-name "$(hostname)" \
    --enable-profiling-otlp --otlp-endpoint 127.0.0.1:4317 --otlp-insecure`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{serviceAnnotation: "true"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.printDefaultConfig {
				_, err := cmd.OutOrStdout().Write(collection.DefaultYAML)
				return err
			}
			o.cfg.NoDefault = !o.defaultConfig
			recorderOffWithoutCluster(cmd, &o.cfg)
			return runAgent(cmd.Context(), o, cmdLogger(cmd))
		},
	}
	o.addNodeFlags(cmd.Flags())
	o.addConsumerFlags(cmd.Flags())
	o.addUsageFlags(cmd.Flags())
	return cmd
}

// addNodeFlags registers the flags of what the agent collects and where: its
// config directory, this node and cluster, the host's procfs, its own endpoints.
func (o *agentFlags) addNodeFlags(f *pflag.FlagSet) {
	f.StringVar(&o.cfg.ConfigDir, "config-dir", "/etc/kprof/agent", "directory of ProfileCollectionConfig files (a mounted ConfigMap); watched for changes. While it is missing or holds no config file, the embedded default runs (see --print-default-config)")
	f.BoolVar(&o.defaultConfig, "default-config", true, "run the embedded default collection config (cpu-clock, 19 Hz, 10s profiles) while --config-dir is missing or holds no config file; false: run nothing then (and fail when the directory is missing)")
	f.BoolVar(&o.printDefaultConfig, "print-default-config", false, "print the embedded default collection config and exit")
	f.StringVar(&o.cfg.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name: a label of every profile, and the node whose pods are watched (default: $NODE_NAME, else the host name)")
	f.StringVar(&o.cfg.ClusterName, "cluster-name", os.Getenv("CLUSTER_NAME"), "cluster name put on every profile (default: $CLUSTER_NAME)")
	f.StringVar(&o.cfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the cluster whose pods label the profiles (default: the in-cluster config inside a pod, else no cluster)")
	f.BoolVar(&o.cfg.NoCluster, "no-cluster", false, "never talk to an API server: profiles carry process labels only")
	f.StringVar(&o.cfg.ProcRoot, "proc-root", agent.DefaultProcRoot, "where the host's procfs is mounted")
	f.StringVar(&o.cfg.MetricsAddr, "metrics-bind-address", agent.DefaultMetricsAddr, "address of the Prometheus /metrics endpoint (0 disables it)")
	f.StringVar(&o.cfg.HealthAddr, "health-probe-bind-address", agent.DefaultHealthAddr, "address of the /healthz probe (0 disables it)")
}

// addConsumerFlags registers the flags of the profile consumers.
func (o *agentFlags) addConsumerFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.cfg.EnableDebug, "enable-debug-consumer", true, "print a one-line summary of every profile to stdout")
	f.BoolVar(&o.cfg.EnablePerfData, "enable-profiling-perfdata", false, "write rotating perf.data files that perf report/script read")
	f.StringVar(&o.cfg.PerfDataPath, "profiling-perfdata-path", "/var/lib/kprof/perfdata", "directory of the perf.data files (with --enable-profiling-perfdata)")
	f.IntVar(&o.cfg.PerfDataMaxFiles, "profiling-perfdata-max-files", agent.DefaultPerfDataMaxFiles, "perf.data files kept; the oldest are removed first (a file covers at most a minute)")
	f.Int64Var(&o.cfg.PerfDataMaxBytes, "profiling-perfdata-max-bytes", agent.DefaultPerfDataMaxBytes, "total bytes of the perf.data files kept; the oldest are removed first")
	f.BoolVar(&o.cfg.EnablePprofFiles, "enable-profiling-pprof", false, "write each profile as a gzipped pprof file (go tool pprof opens it)")
	f.StringVar(&o.cfg.PprofFilesPath, "profiling-pprof-path", "/var/lib/kprof/pprof", "directory of the pprof files (with --enable-profiling-pprof; the newest 1000 per config are kept)")
	f.BoolVar(&o.cfg.EnableDatadog, "enable-profiling-datadog", false, "upload pprof profiles to Datadog (its Agent, or agentless with --datadog-site)")
	f.StringVar(&o.cfg.Datadog.AgentURL, "datadog-agent-url", "", "the Datadog Agent's profiling endpoint (default http://localhost:8126/profiling/v1/input)")
	f.StringVar(&o.cfg.Datadog.Site, "datadog-site", "", "agentless: the Datadog site, e.g. datadoghq.com (API key from --datadog-api-key-file or $DD_API_KEY)")
	f.StringVar(&o.cfg.Datadog.APIKeyFile, "datadog-api-key-file", "", "agentless: file holding the API key (never logged)")
	f.StringVar(&o.cfg.Datadog.Service, "datadog-service", "", "service tag of every uploaded profile (default: each workload's own service name, see docs/service-identity.md)")
	f.StringVar(&o.cfg.Datadog.Env, "datadog-env", "", "env tag of uploaded profiles")
	f.BoolVar(&o.cfg.EnableOTLP, "enable-profiling-otlp", false, "send profiles (and usage metrics) over OTLP/gRPC to --otlp-endpoint")
	f.StringVar(&o.cfg.OTLP.Endpoint, "otlp-endpoint", "", "the OpenTelemetry Collector's OTLP gRPC address, host:port")
	f.BoolVar(&o.cfg.OTLP.Insecure, "otlp-insecure", false, "send OTLP in plaintext (default: TLS)")
	f.StringVar(&o.cfg.OTLP.CAFile, "otlp-ca-file", "", "CA bundle that verifies the collector's certificate (default: the system roots)")
	f.StringVar(&o.cfg.OTLP.CertFile, "otlp-cert-file", "", "client certificate for mutual TLS (with --otlp-key-file)")
	f.StringVar(&o.cfg.OTLP.KeyFile, "otlp-key-file", "", "client key for mutual TLS (with --otlp-cert-file)")
	f.StringVar(&o.cfg.OTLP.ServerName, "otlp-server-name", "", "name checked in the collector's certificate (default: the endpoint's host)")
	f.StringToStringVar((*map[string]string)(&o.cfg.OTLP.Headers), "otlp-header", nil, "gRPC metadata sent with every export, key=value (repeatable; values are never logged). Credentials belong in $OTEL_EXPORTER_OTLP_HEADERS (key=value,key2=value2; from a Secret), which is read too")
	f.StringVar(&o.cfg.OTLP.Compression, "otlp-compression", "none", "compression of OTLP requests: gzip or none")
	f.DurationVar(&o.cfg.OTLP.Timeout, "otlp-timeout", 10*time.Second, "timeout of one OTLP export attempt")
	f.BoolVar(&o.cfg.OTLP.ThreadIDs, "otlp-thread-ids", false, "give each OTLP sample its thread.id attribute (off: backends such as Pyroscope make sample attributes labels, one series per thread)")
	f.StringVar(&o.cfg.OTLPMetricsEndpoint, "otlp-metrics-endpoint", "", "also export usage metrics and the agent's counters as OTLP metrics to this gRPC address, host:port (TLS and headers as --otlp-*; default: no metrics)")
	f.Bool("otlp-no-metrics", false, "no effect: OTLP metrics are off unless --otlp-metrics-endpoint is set")
	_ = f.MarkDeprecated("otlp-no-metrics", "OTLP metrics are off unless --otlp-metrics-endpoint is set")
}

// addUsageFlags registers the flags of the cgroup usage readings, the node's
// threshold evaluation, the flight recorder and shutdown.
func (o *agentFlags) addUsageFlags(f *pflag.FlagSet) {
	f.StringVar(&o.cfg.CgroupRoot, "cgroup-root", "/sys/fs/cgroup", "where the host's cgroup filesystems are mounted (usage metrics)")
	f.DurationVar(&o.cfg.UsageInterval, "usage-interval", time.Second, "how often per-pod/container CPU and memory usage is read from cgroups (with a metrics consumer or --node-thresholds)")
	f.BoolVar(&o.cfg.NodeThresholds, "node-thresholds", true, "evaluate the thresholds of ProfilingConfigs (source agent or auto) on this node's cgroup readings every --usage-interval and create a ProfileCapture on a crossing (needs a cluster; RBAC: get/list/watch profilingconfigs, create profilecaptures)")
	f.DurationVar(&o.cfg.RecorderWindow, "recorder-window", agent.DefaultRecorderWindow, "how long the flight recorder keeps each pod's CPU samples, so that a capture's eBPF profile includes the seconds before it (resolution: the collection interval); 0 disables it (with --no-cluster it is off unless set: there are no pods)")
	f.Int64Var(&o.cfg.RecorderMaxBytes, "recorder-max-bytes", agent.DefaultRecorderMaxBytes, "bound of the flight recorder's memory (approximate bytes); past it the oldest samples are evicted")
	f.StringVar(&o.cfg.RecorderAddr, "recorder-bind-address", agent.DefaultRecorderAddr, "address of the flight recorder's endpoint, where the operator fetches a pod's eBPF profile (0 disables it; with --no-cluster it is off unless set)")
	f.StringVar(&o.cfg.RecorderTokenFile, "recorder-token-file", agent.DefaultRecorderTokenFile, "file holding the bearer token the flight recorder's endpoint requires (the kprof-recorder-token Secret, mounted); read on every request; while it is missing every request is refused")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 20*time.Second, "how long collectors and consumers may flush on shutdown")
}

// recorderOffWithoutCluster turns the flight recorder off with --no-cluster unless
// its flags are set: without a cluster no sample belongs to a pod and no operator
// fetches one, so the recorder would only hold memory and a port (9092, which
// Kafka's brokers use on many laptops).
func recorderOffWithoutCluster(cmd *cobra.Command, cfg *agent.Config) {
	if !cfg.NoCluster {
		return
	}
	f := cmd.Flags()
	if !f.Changed("recorder-window") {
		cfg.RecorderWindow = 0
	}
	if !f.Changed("recorder-bind-address") {
		cfg.RecorderAddr = "0"
	}
}

func runAgent(ctx context.Context, o agentFlags, logger *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := o.cfg
	cfg.Logger = logger
	cfg.Registry = reg
	if err := otlpHeadersFromEnv(&cfg, os.Getenv(otlpHeadersEnv)); err != nil {
		return err
	}
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout)
		defer cancel()
		_ = a.Shutdown(shutdownCtx)
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down", "logger", "main", "timeout", o.shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout)
	defer cancel()
	if err := a.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("agent shutdown: %w", err)
	}
	return nil
}

// otlpHeadersEnv is the OpenTelemetry exporter's standard variable for headers.
const otlpHeadersEnv = "OTEL_EXPORTER_OTLP_HEADERS"

// otlpHeadersFromEnv adds the headers of $OTEL_EXPORTER_OTLP_HEADERS
// ("k1=v1,k2=v2", values URL-encoded as the OpenTelemetry specification says)
// to cfg; --otlp-header wins for a key set in both. Errors name the variable,
// never a value.
func otlpHeadersFromEnv(cfg *agent.Config, env string) error {
	if strings.TrimSpace(env) == "" {
		return nil
	}
	for i, pair := range strings.Split(env, ",") {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return fmt.Errorf("$%s: entry %d is not key=value", otlpHeadersEnv, i+1)
		}
		val, err := url.QueryUnescape(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("$%s: entry %d (%s): the value is not URL-encoded", otlpHeadersEnv, i+1, k)
		}
		if cfg.OTLP.Headers == nil {
			cfg.OTLP.Headers = map[string]string{}
		}
		if _, set := cfg.OTLP.Headers[k]; !set {
			cfg.OTLP.Headers[k] = val
		}
	}
	return nil
}
