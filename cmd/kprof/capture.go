package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/local"
	"github.com/kprof/kprof/internal/logging"
	"github.com/kprof/kprof/internal/podtarget"
	"github.com/kprof/kprof/internal/portforward"
)

type captureFlags struct {
	types   []string
	seconds int
	timeout time.Duration
	output  string
	verbose bool
	// URL only.
	service string
	// pod only.
	kubeconfig  string
	portForward bool
	kubeContext string
}

func newCaptureCmd() *cobra.Command {
	var f captureFlags
	cmd := &cobra.Command{
		Use:   "capture URL [--type cpu,heap] [--seconds N] [--output DIR]",
		Short: "Capture profiles of one target once: a pprof URL, or a pod (kprof capture pod NAMESPACE/NAME)",
		Long: `Capture fetches each requested profile type of one target once and stores it below --output.
URL is the pprof prefix of the target, e.g. http://127.0.0.1:6060/debug/pprof (a trailing
slash is fine; a URL without a path means /debug/pprof). While a CPU profile is being
recorded, a progress bar is drawn on a terminal, and a line logged every few seconds otherwise.`,
		Example: `  kprof capture http://127.0.0.1:6060/debug/pprof
  kprof capture http://127.0.0.1:6060/debug/pprof/ --type cpu,heap,goroutine --seconds 10
  kprof capture pod shop/checkout-7d9f6 --type heap`,
		Args:                  cobra.ExactArgs(1),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, err := local.URLTarget(args[0], f.service)
			if err != nil {
				return err
			}
			return withTimeout(cmd.Context(), f, func(ctx context.Context) error {
				return captureTarget(ctx, cmd, f, target, nil)
			})
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringSliceVarP(&f.types, "type", "t", local.DefaultProfileTypes,
		"profile types to capture, in order: cpu, heap, goroutine, mutex, block, allocs, threadcreate")
	pf.IntVarP(&f.seconds, "seconds", "s", local.DefaultCPUProfileDurationSeconds, "length of the CPU profile in seconds")
	pf.DurationVar(&f.timeout, "timeout", 0, "give up when the whole capture (every type, and the pod lookup) takes longer than this, e.g. 2m (default: no limit beyond each request's own)")
	pf.StringVarP(&f.output, "output", "o", local.DefaultStoragePath, "directory to store profiles in")
	pf.BoolVar(&f.verbose, "verbose", false, "log debug messages")
	_ = pf.MarkDeprecated("verbose", "use --log-level=debug")
	cmd.Flags().StringVar(&f.service, "service", "", "service name for the storage key (default: the URL's host)")

	cmd.AddCommand(newCapturePodCmd(&f))
	return cmd
}

// newCapturePodCmd is `kprof capture pod`: f holds the flags it shares with
// `kprof capture`, whose persistent flags they are.
func newCapturePodCmd(f *captureFlags) *cobra.Command {
	var v viaOperatorFlags
	pod := &cobra.Command{
		Use:   "pod NAMESPACE/NAME [--kubeconfig FILE] [--context NAME] [--type cpu,heap] [--seconds N] [--output DIR]",
		Short: "Capture profiles of a running pod, directly from its pod IP",
		Long: `Capture pod looks the pod up through the Kubernetes API and captures from its pod IP, on the port of
its profiling.io/port annotation (default 6060) and the path of profiling.io/path (default
/debug/pprof). The pod must be Running and have a pod IP. Without --port-forward this machine needs a route to
the cluster's pod network (as inside the cluster); from anywhere else, add --port-forward to
capture through the API server's pods/portforward (RBAC: create on pods/portforward).
The kubeconfig is --kubeconfig, else $KUBECONFIG, else ~/.kube/config, else the in-cluster config.

With --via-operator it asks the kprof operator instead: it creates a ProfileCapture (RBAC:
create on profilecaptures), waits until the operator finished it, and prints each stored
profile's type, location and size, with the eBPF CPU profile of the pod when a kprof agent
runs on its node. The operator uses the storage and policy of the ProfilingConfig that
selects the pod (--config names one); a pod that is not annotated profiling.io/enabled:
"true" or that no config selects is refused. It exits non-zero when the capture failed or
was skipped, with the operator's message.`,
		Example: `  kprof capture pod shop/checkout-7d9f6 --type cpu,heap --seconds 20
  kprof capture pod shop/checkout-7d9f6 --port-forward --context staging
  kprof capture pod shop/checkout-7d9f6 --via-operator --types cpu,heap --duration 10s --reason "incident 4711"`,
		Args:                  cobra.ExactArgs(1),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := *f
			if v.enabled {
				if v.duration > 0 {
					f.seconds = int(v.duration / time.Second) // what --timeout is checked against
				}
				return withTimeout(cmd.Context(), f, func(ctx context.Context) error {
					return captureViaOperator(ctx, cmd, f, v, args[0])
				})
			}
			return withTimeout(cmd.Context(), f, func(ctx context.Context) error {
				return capturePod(ctx, cmd, f, args[0])
			})
		},
	}
	addViaOperatorFlags(pod, &v)
	pod.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	pod.Flags().StringVar(&f.kubeContext, "context", "", "kubeconfig context (default: the current context)")
	pod.Flags().BoolVar(&f.portForward, "port-forward", false, "capture through the API server's pods/portforward (from outside the cluster network)")
	return pod
}

func capturePod(ctx context.Context, cmd *cobra.Command, f captureFlags, ref string) error {
	name, err := local.ParsePodRef(ref)
	if err != nil {
		return err
	}
	log := cmdLogger(cmd)
	ctrllog.SetLogger(logging.ToLogr(log))
	c, err := local.NewKubeClient(f.kubeconfig, f.kubeContext)
	if err != nil {
		return err
	}
	target, err := local.ResolvePod(ctx, c, name)
	if err != nil {
		return err
	}
	var httpClient *http.Client
	if f.portForward {
		restCfg, err := local.LoadKubeConfig(f.kubeconfig, f.kubeContext)
		if err != nil {
			return err
		}
		if httpClient, err = portforward.NewHTTPClient(portforward.Config{RESTConfig: restCfg, Logger: log}); err != nil {
			return fmt.Errorf("port-forward: %w", err)
		}
		target.BaseURL = podtarget.PortForwardURL(name.Namespace, name.Name, target.BaseURL)
	}
	log.Info("resolved pod", "pod", name.String(), "node", target.Meta.Node, "container", target.Meta.Container, "url", target.BaseURL)
	if err := captureTarget(ctx, cmd, f, target, httpClient); err != nil {
		if !f.portForward {
			log.Info("hint: the pod IP must be reachable from here; outside the cluster network, add --port-forward", "pod", name.String())
		}
		return err
	}
	return nil
}

func captureTarget(ctx context.Context, cmd *cobra.Command, f captureFlags, target capture.Target, httpClient *http.Client) error {
	types := make([]capture.ProfileType, 0, len(f.types))
	for _, s := range f.types {
		t, err := capture.ParseProfileType(s)
		if err != nil {
			return fmt.Errorf("--type: %w", err)
		}
		types = append(types, t)
	}
	if f.seconds < 1 {
		return fmt.Errorf("--seconds: must be at least 1, got %d", f.seconds)
	}
	return local.CaptureOne(ctx, local.CaptureOneConfig{
		Target:      target,
		HTTPClient:  httpClient,
		Types:       types,
		CPUDuration: time.Duration(f.seconds) * time.Second,
		Dir:         f.output,
		Terminal:    logging.IsTerminal(cmd.ErrOrStderr()),
		Progress:    cmd.ErrOrStderr(),
		Logger:      cmdLogger(cmd),
		Out:         cmd.OutOrStdout(),
	})
}

// withTimeout runs capture under --timeout, if set, and names it when it cut the
// capture short.
func withTimeout(ctx context.Context, f captureFlags, capture func(context.Context) error) error {
	switch {
	case f.timeout < 0:
		return fmt.Errorf("--timeout: must not be negative, got %s", f.timeout)
	case f.timeout == 0:
		return capture(ctx)
	case slices.Contains(f.types, "cpu") && f.timeout <= time.Duration(f.seconds)*time.Second:
		return fmt.Errorf("--timeout %s: must be longer than the %ds CPU profile (--seconds)", f.timeout, f.seconds)
	}
	tctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	err := capture(tctx)
	if err != nil && ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("did not finish within --timeout %s: %w", f.timeout, err)
	}
	return err
}
