//go:build scale

// Command peer is the scale benchmark's baseline: a bare controller-runtime manager with the
// kprof operator's scheme and cache options that watches ProfilingConfigs and pods the way the
// operator does (a pod event enqueues every ProfilingConfig of the pod's namespace), with a
// reconciler that does nothing. What it costs is the floor of any controller that watches these
// pods; what kprof costs above it is kprof's own. It reads the kubeconfig from $KUBECONFIG.
//
//	go build -tags scale -o peer ./test/scale/peer
//	KUBECONFIG=... ./peer --metrics-bind-address 127.0.0.1:9090 --health-probe-bind-address 127.0.0.1:9091
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/operator"
)

func main() { os.Exit(run()) }

func run() int {
	metricsAddr := flag.String("metrics-bind-address", "127.0.0.1:0", "address of /metrics")
	probeAddr := flag.String("health-probe-bind-address", "127.0.0.1:0", "address of /readyz")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, *metricsAddr, *probeAddr); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, metricsAddr, probeAddr string) error {
	ctrl.SetLogger(zap.New())
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 operator.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		Cache:                  cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	c := mgr.GetClient()
	configsOfNamespace := func(ctx context.Context, o client.Object) []reconcile.Request {
		var list profilingv1alpha1.ProfilingConfigList
		if err := c.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for i := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
		return reqs
	}
	err = ctrl.NewControllerManagedBy(mgr).
		For(&profilingv1alpha1.ProfilingConfig{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(configsOfNamespace)).
		Named("peer").
		Complete(reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) {
			return reconcile.Result{}, nil
		}))
	if err != nil {
		return fmt.Errorf("set up controller: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}
