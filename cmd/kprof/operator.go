package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kprof/kprof/internal/controller"
	"github.com/kprof/kprof/internal/logging"
	"github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/ui"
)

type operatorFlags struct {
	metricsAddr   string
	probeAddr     string
	enablePprof   bool
	leaderElect   bool
	leaderElectNS string
	leaseDuration time.Duration
	renewDeadline time.Duration
	retryPeriod   time.Duration
	opts          operator.Options
	zapLogLevel   string
}

func newOperatorCmd() *cobra.Command {
	var o operatorFlags
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Run the Kubernetes operator: ProfilingConfigs select annotated pods whose profiles are captured and stored",
		Long: `Operator runs the kprof controller manager. It watches ProfilingConfig resources; each
selects pods (by label, among those annotated profiling.io/enabled: "true") and says which
pprof profile types to capture from them: on a schedule (onDemand), when a pod's CPU or
memory crosses a threshold (read from metrics.k8s.io, or by the kprof agent on the pod's
node), or both. It executes ProfileCaptures (one request to capture one pod, from a
threshold crossing or a user): it captures the pod's pprof profiles with the policy and
storage of the ProfilingConfig that selects it, and asks the agent on the pod's node
(--agent-*) for the pod's eBPF CPU profile of the seconds before (--recorder-window).
Captured profiles are stored unchanged below --profiles-dir or uploaded to S3 through a
durable spool (--spool-dir).

It runs in the cluster (the Helm chart charts/kprof or make deploy install it with its
RBAC), or outside it against the current kubeconfig context, with --port-forward when
this machine cannot reach pod IPs. Every replica but the elected leader waits when
--leader-elect is set.

With --ui-listen it serves the web UI of kprof ui (list, timeline, flame graphs) over the
profiles it stored: --profiles-dir, or --ui-store. Every replica serves it, each over its
own pod's directory; only the leader captures.`,
		Example: `  # In a pod (as the chart runs it), with the web UI over its profiles on port 8082:
  kprof operator --leader-elect --metrics-bind-address=:8080 --health-probe-bind-address=:8081 --ui-listen=:8082

  # From a workstation, against the current kubeconfig context, profiles in ./profiles:
  kprof operator --kubeconfig ~/.kube/config --port-forward --profiles-dir ./profiles \
    --spool-dir ./spool --metrics-bind-address 0 --log-level debug`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{serviceAnnotation: "true"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkUIFlags(cmd.Flags(), &o.opts.UI); err != nil {
				return err
			}
			if o.enablePprof && o.metricsAddr == "0" {
				return errors.New("--enable-pprof: needs the metrics port (--metrics-bind-address is 0)")
			}
			return runOperator(cmd.Context(), o, cmdLogger(cmd))
		},
	}
	f := cmd.Flags()
	o.addManagerFlags(f)
	o.addStorageFlags(f)
	o.addCaptureFlags(f)
	o.addUIFlags(f)
	// Manifests written for the zap logger of earlier versions pass --zap-log-level;
	// it sets the level when --log-level is not given (see setUpLogging).
	f.StringVar(&o.zapLogLevel, "zap-log-level", "", "deprecated: use --log-level")
	_ = f.MarkHidden("zap-log-level")
	// controller-runtime registers --kubeconfig on the standard flag set; expose it.
	if kc := flag.CommandLine.Lookup("kubeconfig"); kc != nil {
		f.AddGoFlag(kc)
	}
	return cmd
}

// addManagerFlags registers the flags of the controller manager: its endpoints
// and leader election.
func (o *operatorFlags) addManagerFlags(f *pflag.FlagSet) {
	f.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint (0 disables it)")
	f.BoolVar(&o.enablePprof, "enable-pprof", false, "serve the operator's own pprof profiles (net/http/pprof) under /debug/pprof/ on the metrics port; off by default, as profiles show code paths and memory contents")
	f.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	f.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader so only one replica captures")
	f.StringVar(&o.leaderElectNS, "leader-election-namespace", "", "namespace of the leader election Lease (default: the pod's namespace)")
	f.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long standbys wait after the leader's last renewal before one takes over (the longest a dead leader leaves nobody capturing)")
	f.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader keeps retrying to renew before it gives up leading (and exits); less than --leader-elect-lease-duration")
	f.DurationVar(&o.retryPeriod, "leader-elect-retry-period", 2*time.Second, "how often the leader renews and standbys try to acquire the lease")
}

// addStorageFlags registers the flags of where profiles are kept: the profiles
// directory, the spool of S3 uploads, and the namespace of their credentials.
func (o *operatorFlags) addStorageFlags(f *pflag.FlagSet) {
	f.StringVar(&o.opts.ProfilesDir, "profiles-dir", "/var/lib/kprof/profiles", "directory for profiles of configs without s3Config (localStorage.path is relative to it)")
	f.StringVar(&o.opts.SpoolDir, "spool-dir", "/var/lib/kprof/spool", "durable spool of profiles waiting for upload to S3 (use a persistent volume to keep them across pod restarts)")
	f.Int64Var(&o.opts.SpoolMaxBytes, "spool-max-bytes", 1<<30, "largest spool size; beyond it the oldest profiles are evicted (counted, with an Event)")
	f.DurationVar(&o.opts.SpoolMaxAge, "spool-max-age", 24*time.Hour, "spooled profiles older than this are evicted (counted, with an Event)")
	f.DurationVar(&o.opts.ProfilesMaxAge, "profiles-max-age", operator.DefaultProfilesMaxAge, "profiles below --profiles-dir captured longer ago than this are deleted with their metadata (counted; 0: no bound)")
	f.Int64Var(&o.opts.ProfilesMaxBytes, "profiles-max-bytes", operator.DefaultProfilesMaxBytes, "largest size of --profiles-dir; beyond it the oldest profiles are deleted with their metadata (counted; 0: no bound; keep it below the volume's size)")
	f.StringVar(&o.opts.SecretsNamespace, "secrets-namespace", envOr("POD_NAMESPACE", "kprof-system"), "namespace of the Secrets named by s3Config.credentialsSecretRef (the operator's own)")
}

// addCaptureFlags registers the flags of how captures run: their transport, limits,
// intervals, and the agents asked for eBPF profiles.
func (o *operatorFlags) addCaptureFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.opts.PortForward, "port-forward", false, "capture through the API server's pods/portforward instead of pod IPs (for an operator outside the cluster network; needs pods/portforward create)")
	f.BoolVar(&o.opts.DisableThresholds, "disable-thresholds", false, "never read metrics.k8s.io; spec.thresholds is ignored")
	f.DurationVar(&o.opts.MetricsTimeout, "metrics-timeout", 10*time.Second, "timeout of one metrics.k8s.io request")
	f.DurationVar(&o.opts.StatusInterval, "status-interval", controller.DefaultStatusInterval, "capture results are folded into a ProfilingConfig's status at most this often (status counters are this stale at most)")
	f.DurationVar(&o.opts.EventInterval, "event-interval", controller.DefaultEventInterval, "a ProfilingConfig's captures, failures and threshold crossings are summarized in one Event per reason this often (a pod gets its own Event only when its captures start failing or recover)")
	f.IntVar(&o.opts.MaxConcurrent, "max-concurrent-captures", 16, "captures running at once across all pods")
	f.Int64Var(&o.opts.MaxProfileBytes, "max-profile-bytes", 64<<20, "largest profile accepted from a target, in bytes")
	f.DurationVar(&o.opts.RequestTimeout, "capture-timeout", 30*time.Second, "timeout of one profile request (CPU profiles get their duration on top)")
	f.DurationVar(&o.opts.ShutdownGrace, "shutdown-grace-period", 25*time.Second, "how long in-flight captures may finish on shutdown before they are cancelled")
	f.StringVar(&o.opts.AgentNamespace, "agent-namespace", "", "namespace of the kprof agent pods (default: --secrets-namespace, the operator's own)")
	f.StringVar(&o.opts.AgentSelector, "agent-selector", controller.DefaultAgentSelector, "label selector of the kprof agent pods: thresholds of pods on a node with a Ready agent are evaluated there (source auto), and its flight recorder is asked for their eBPF profiles")
	f.IntVar(&o.opts.AgentRecorderPort, "agent-recorder-port", controller.DefaultRecorderPort, "port of the agents' flight recorder (http://<agent pod IP>:<port>)")
	f.StringVar(&o.opts.AgentTokenSecret, "agent-token-secret", operator.DefaultAgentTokenSecret, "Secret (in --secrets-namespace, key token) with the flight recorder's bearer token; created with a random token when missing")
	f.DurationVar(&o.opts.RecorderWindow, "recorder-window", controller.DefaultRecorderWindow, "how long before a ProfileCapture's request (or threshold crossing) the eBPF profile asked from the agent starts")
	f.IntVar(&o.opts.MaxCapturesPerNamespace, "profilecapture-max-per-namespace", controller.DefaultMaxCapturesPerNamespace, "finished ProfileCaptures kept per namespace; the oldest are deleted beyond it")
}

// addUIFlags registers the flags of the web UI over the stored profiles.
func (o *operatorFlags) addUIFlags(f *pflag.FlagSet) {
	f.StringVar(&o.opts.UI.Listen, "ui-listen", "", "address of the web UI over the stored profiles, e.g. :8082 (empty: no UI); served by every replica, each its own pod's files")
	f.StringVar(&o.opts.UI.Store, "ui-store", "", "what the web UI lists: empty is --profiles-dir; or a directory, or s3://BUCKET/PREFIX (AWS default credentials: IRSA, AWS_* variables)")
	f.StringVar(&o.opts.UI.S3Endpoint, "ui-s3-endpoint", "", "S3-compatible endpoint of an s3:// --ui-store, e.g. http://minio.storage:9000 (default: AWS)")
	f.StringVar(&o.opts.UI.S3Region, "ui-s3-region", "", "region of the --ui-store bucket (default: the AWS configuration chain)")
	f.Int64Var(&o.opts.UI.MaxProfileBytes, "ui-max-bytes", ui.DefaultMaxProfileBytes, "largest profile the web UI opens, in bytes")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// uiFlags names the flag of each operator.UIOptions field.
var uiFlags = map[string]string{
	"Listen": "--ui-listen", "Store": "--ui-store", "S3Endpoint": "--ui-s3-endpoint", "S3Region": "--ui-s3-region", "MaxProfileBytes": "--ui-max-bytes",
}

// checkUIFlags reports every bad --ui-* flag by name, before the operator connects to a
// cluster. An unchanged --ui-max-bytes is the UI's default, also with the UI off.
func checkUIFlags(f *pflag.FlagSet, u *operator.UIOptions) error {
	if !f.Changed("ui-max-bytes") {
		u.MaxProfileBytes = 0
	} else if u.MaxProfileBytes == 0 {
		return errors.New("--ui-max-bytes: must be positive, got 0")
	}
	return u.Check(func(field string) string { return uiFlags[field] })
}

// checkLeaseFlags reports leader election durations client-go would refuse (it
// panics on them) by flag name.
func (o *operatorFlags) checkLeaseFlags() error {
	switch {
	case o.retryPeriod <= 0:
		return fmt.Errorf("--leader-elect-retry-period: must be positive, got %s", o.retryPeriod)
	case o.renewDeadline <= o.retryPeriod:
		return fmt.Errorf("--leader-elect-renew-deadline %s: must be longer than --leader-elect-retry-period %s", o.renewDeadline, o.retryPeriod)
	case o.leaseDuration <= o.renewDeadline:
		return fmt.Errorf("--leader-elect-lease-duration %s: must be longer than --leader-elect-renew-deadline %s", o.leaseDuration, o.renewDeadline)
	}
	return nil
}

func runOperator(ctx context.Context, o operatorFlags, log *slog.Logger) error {
	if err := o.checkLeaseFlags(); err != nil {
		return err
	}
	ctrl.SetLogger(logging.ToLogr(log))
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	grace := o.opts.ShutdownGrace + 5*time.Second
	metricsOpts := metricsserver.Options{BindAddress: o.metricsAddr}
	if o.enablePprof {
		metricsOpts.ExtraHandlers = operator.PprofHandlers()
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        operator.NewScheme(),
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "kprof-operator.profiling.io",
		LeaderElectionNamespace:       o.leaderElectNS,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &o.leaseDuration,
		RenewDeadline:                 &o.renewDeadline,
		RetryPeriod:                   &o.retryPeriod,
		GracefulShutdownTimeout:       &grace,
		Cache:                         cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	o.opts.Registerer = crmetrics.Registry
	o.opts.RESTConfig = restCfg
	if err := operator.Setup(mgr, o.opts); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add healthz check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("add readyz check: %w", err)
	}
	log.With("logger", "operator").Info("starting operator", "pprof", o.enablePprof, "profilesDir", o.opts.ProfilesDir, "profilesMaxAge", o.opts.ProfilesMaxAge, "profilesMaxBytes", o.opts.ProfilesMaxBytes, "leaderElection", o.leaderElect, "uiListen", o.opts.UI.Listen)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}
