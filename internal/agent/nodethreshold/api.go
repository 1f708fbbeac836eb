package nodethreshold

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/lifecycle"
)

// apiServer is what the thresholds need of the API server: the ProfilingConfigs of a
// synced cache, and ProfileCapture creates. A test replaces it.
type apiServer interface {
	// Configs returns the ProfilingConfigs known (shared: not to be modified) and whether
	// the cache has synced.
	Configs() ([]*profilingv1alpha1.ProfilingConfig, bool)
	// Create creates pc and returns it as created.
	Create(ctx context.Context, pc *profilingv1alpha1.ProfileCapture) (*profilingv1alpha1.ProfileCapture, error)
	start()
	stop(ctx context.Context) error
}

// restAPI is the apiServer of a real cluster: a typed REST client of profiling.io/v1alpha1
// and a ProfilingConfig informer on it (cluster-wide: a config may select pods of any
// namespace).
type restAPI struct {
	client   rest.Interface
	informer cache.SharedIndexInformer
	access   *access
	run      lifecycle.Background
}

// newRESTAPI builds (does not start) the client and the informer from rc (not modified).
func newRESTAPI(rc *rest.Config, acc *access, log *slog.Logger) (*restAPI, error) {
	scheme := runtime.NewScheme()
	if err := profilingv1alpha1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("profiling.io scheme: %w", err)
	}
	c := rest.CopyConfig(rc)
	gv := profilingv1alpha1.GroupVersion
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	c.ContentType = runtime.ContentTypeJSON
	if c.UserAgent == "" {
		c.UserAgent = "kprof-agent"
	}
	client, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("profiling.io client for %s: %w", rc.Host, err)
	}
	a := &restAPI{client: client, access: acc}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list := &profilingv1alpha1.ProfilingConfigList{}
			err := client.Get().Resource("profilingconfigs").VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(list)
			acc.note(OpWatchConfigs, err)
			if err != nil {
				return nil, fmt.Errorf("list ProfilingConfigs: %w", err)
			}
			return list, nil
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			w, err := client.Get().Resource("profilingconfigs").VersionedParams(&opts, metav1.ParameterCodec).Watch(ctx)
			acc.note(OpWatchConfigs, err)
			if err != nil {
				return nil, fmt.Errorf("watch ProfilingConfigs: %w", err)
			}
			return w, nil
		},
	}
	a.informer = cache.NewSharedIndexInformer(lw, &profilingv1alpha1.ProfilingConfig{}, 0, cache.Indexers{})
	if err := a.informer.SetTransform(stripConfig); err != nil {
		return nil, fmt.Errorf("ProfilingConfig informer: %w", err)
	}
	err = a.informer.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
		switch {
		case ctx.Err() != nil, errors.Is(err, io.EOF), apierrors.IsForbidden(err):
			// Shutting down, the watch closed normally, or Forbidden (logged by access).
		case apierrors.IsResourceExpired(err), apierrors.IsGone(err), errors.Is(err, io.ErrUnexpectedEOF):
			log.Debug("ProfilingConfig watch closed, relisting", "err", err)
		default:
			log.Warn("ProfilingConfig watch failed, retrying", "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("ProfilingConfig informer: %w", err)
	}
	return a, nil
}

// stripConfig drops what the thresholds never read of a ProfilingConfig.
func stripConfig(obj any) (any, error) {
	if pc, ok := obj.(*profilingv1alpha1.ProfilingConfig); ok {
		pc.ManagedFields = nil
		pc.Annotations = nil
		pc.Status.Conditions = nil
	}
	return obj, nil
}

func (a *restAPI) Configs() ([]*profilingv1alpha1.ProfilingConfig, bool) {
	objs := a.informer.GetStore().List()
	out := make([]*profilingv1alpha1.ProfilingConfig, 0, len(objs))
	for _, o := range objs {
		if pc, ok := o.(*profilingv1alpha1.ProfilingConfig); ok {
			out = append(out, pc)
		}
	}
	return out, a.informer.HasSynced()
}

func (a *restAPI) Create(ctx context.Context, pc *profilingv1alpha1.ProfileCapture) (*profilingv1alpha1.ProfileCapture, error) {
	out := &profilingv1alpha1.ProfileCapture{}
	err := a.client.Post().Namespace(pc.Namespace).Resource("profilecaptures").Body(pc).Do(ctx).Into(out)
	a.access.note(OpCreateCaptures, err)
	if err != nil {
		return nil, fmt.Errorf("create ProfileCapture for pod %s/%s: %w", pc.Namespace, pc.Spec.Pod, err)
	}
	return out, nil
}

func (a *restAPI) start() { a.run.Go(a.informer.RunWithContext) }

func (a *restAPI) stop(ctx context.Context) error {
	if err := a.run.Stop(ctx); err != nil {
		return fmt.Errorf("stop ProfilingConfig informer: %w", err)
	}
	return nil
}

// access tracks whether the API server forbids an operation: one log line and the gauge
// at each change, so an agent without RBAC says so once, naming the permission.
type access struct {
	log     *slog.Logger
	metrics *metrics

	mu        sync.Mutex
	forbidden map[string]bool
}

func newAccess(log *slog.Logger, m *metrics) *access {
	return &access{log: log, metrics: m, forbidden: map[string]bool{}}
}

// operations says what each operation is and the permission it needs, as the agent's
// ClusterRole grants it.
var operations = map[string]struct{ what, permission string }{
	OpWatchConfigs:   {"to list and watch ProfilingConfigs", "get, list, watch on profilingconfigs.profiling.io (cluster-wide)"},
	OpCreateCaptures: {"to create ProfileCaptures", "create on profilecaptures.profiling.io"},
}

// note records the outcome of op: err Forbidden marks it forbidden, nil clears that;
// other errors change nothing.
func (a *access) note(op string, err error) {
	isForbidden := apierrors.IsForbidden(err)
	if err != nil && !isForbidden {
		return
	}
	a.mu.Lock()
	was := a.forbidden[op]
	a.forbidden[op] = isForbidden
	a.mu.Unlock()
	o := operations[op]
	switch {
	case isForbidden && !was:
		a.metrics.forbidden.WithLabelValues(op).Set(1)
		a.log.Error("node thresholds: forbidden "+o.what+": the agent's RBAC lacks "+o.permission,
			"operation", op, "missing_permission", o.permission, "err", err)
	case !isForbidden && was:
		a.metrics.forbidden.WithLabelValues(op).Set(0)
		a.log.Info("node thresholds: allowed "+o.what+" again", "operation", op)
	}
}

// Forbidden returns the operations the API server forbids, nil when none.
func (a *access) Forbidden() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ops []string
	for _, op := range []string{OpWatchConfigs, OpCreateCaptures} {
		if a.forbidden[op] {
			ops = append(ops, op)
		}
	}
	return ops
}
