package threshold

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	metricsv1beta1 "k8s.io/metrics/pkg/client/clientset/versioned/typed/metrics/v1beta1"
)

// ContainerUsage is one container's usage in a metrics sample.
type ContainerUsage struct {
	Name   string
	CPU    resource.Quantity // cores, usually in nanocores
	Memory resource.Quantity // working set bytes
}

// PodUsage is one pod's usage sample: the average over [Timestamp-Window, Timestamp].
type PodUsage struct {
	Namespace, Name string
	Timestamp       time.Time
	Window          time.Duration
	Containers      []ContainerUsage
}

// Source reads pod usage.
type Source interface {
	// PodUsage returns the usage of the pods of namespace matching selector,
	// keyed by pod name. Errors that mean the metrics API cannot be used satisfy
	// IsMetricsUnavailable.
	PodUsage(ctx context.Context, namespace string, selector labels.Selector) (map[string]PodUsage, error)
}

// DefaultMetricsTimeout bounds one list of pod metrics when NewMetricsSource is given 0.
const DefaultMetricsTimeout = 10 * time.Second

// ErrMetricsUnavailable is wrapped by errors meaning that metrics.k8s.io cannot
// be used right now: the APIService is not installed, metrics-server is down or
// failing, or it did not answer in time.
var ErrMetricsUnavailable = errors.New("metrics.k8s.io unavailable")

// IsMetricsUnavailable reports whether err means metrics.k8s.io cannot be used.
func IsMetricsUnavailable(err error) bool { return errors.Is(err, ErrMetricsUnavailable) }

// Reasons returned by MetricsErrorReason, CamelCase for conditions and Events.
const (
	MetricsNotInstalled       = "MetricsAPINotInstalled" // 404 on the group: no APIService (metrics-server not installed)
	MetricsServiceUnavailable = "MetricsServiceUnavailable"
	MetricsTimeout            = "MetricsTimeout"
	MetricsConnectFailed      = "MetricsConnectFailed"
	MetricsServerError        = "MetricsServerError" // 5xx other than 503/504, or 429
	MetricsForbidden          = "MetricsForbidden"   // RBAC: the operator may not list pods.metrics.k8s.io
	MetricsCanceled           = "MetricsCanceled"    // the caller's context ended
	MetricsError              = "MetricsError"       // anything else
)

// MetricsErrorReason returns a CamelCase reason for an error of a Source: one of
// the Metrics* constants ("" for nil). Errors of other Sources get MetricsError.
func MetricsErrorReason(err error) string {
	if err == nil {
		return ""
	}
	var se *sourceError
	if errors.As(err, &se) {
		return se.reason
	}
	return MetricsError
}

// sourceError carries the classification of a metrics API error.
type sourceError struct {
	reason      string
	unavailable bool
	err         error
}

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }
func (e *sourceError) Is(target error) bool {
	return target == ErrMetricsUnavailable && e.unavailable
}

// MetricsSource reads PodMetrics from metrics.k8s.io/v1beta1 through the API
// server, as kubectl top does.
type MetricsSource struct {
	client  metricsv1beta1.PodMetricsesGetter
	timeout time.Duration
}

var _ Source = (*MetricsSource)(nil)

// NewMetricsSource returns a Source reading metrics.k8s.io with cfg (not
// modified). Each list is bounded by timeout (DefaultMetricsTimeout when 0).
func NewMetricsSource(cfg *rest.Config, timeout time.Duration) (*MetricsSource, error) {
	switch {
	case cfg == nil:
		return nil, errors.New("metrics source: rest config is nil")
	case timeout < 0:
		return nil, fmt.Errorf("metrics source: timeout %s is negative", timeout)
	case timeout == 0:
		timeout = DefaultMetricsTimeout
	}
	c, err := metricsclient.NewForConfig(rest.CopyConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("metrics source: create metrics.k8s.io client: %w", err)
	}
	return &MetricsSource{client: c.MetricsV1beta1(), timeout: timeout}, nil
}

// PodUsage lists the PodMetrics of namespace matching selector (nil: all pods;
// labels.Nothing(): none, without a request).
func (s *MetricsSource) PodUsage(ctx context.Context, namespace string, selector labels.Selector) (map[string]PodUsage, error) {
	opts := metav1.ListOptions{}
	if selector != nil {
		if _, selectable := selector.Requirements(); !selectable {
			return map[string]PodUsage{}, nil // labels.Nothing(): its String() "" would select everything
		}
		opts.LabelSelector = selector.String()
	}
	callCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	list, err := s.client.PodMetricses(namespace).List(callCtx, opts)
	if err != nil {
		return nil, classify(ctx, fmt.Errorf("list pod metrics in namespace %q: %w", namespace, err))
	}
	out := make(map[string]PodUsage, len(list.Items))
	for i := range list.Items {
		pm := &list.Items[i]
		u := PodUsage{
			Namespace:  pm.Namespace,
			Name:       pm.Name,
			Timestamp:  pm.Timestamp.Time,
			Window:     pm.Window.Duration,
			Containers: make([]ContainerUsage, 0, len(pm.Containers)),
		}
		for _, c := range pm.Containers {
			u.Containers = append(u.Containers, ContainerUsage{
				Name:   c.Name,
				CPU:    c.Usage[corev1.ResourceCPU],
				Memory: c.Usage[corev1.ResourceMemory],
			})
		}
		out[pm.Name] = u
	}
	return out, nil
}

// classify wraps err with its reason; ctx is the caller's context, to tell our
// own timeout from the caller giving up.
func classify(ctx context.Context, err error) error {
	mark := func(reason string, unavailable bool) error {
		return &sourceError{reason: reason, unavailable: unavailable, err: err}
	}
	var netErr net.Error
	switch {
	case ctx.Err() != nil:
		return mark(MetricsCanceled, false)
	case apierrors.IsNotFound(err):
		return mark(MetricsNotInstalled, true)
	case apierrors.IsServiceUnavailable(err):
		return mark(MetricsServiceUnavailable, true)
	case apierrors.IsTimeout(err), apierrors.IsServerTimeout(err), errors.Is(err, context.DeadlineExceeded):
		return mark(MetricsTimeout, true)
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return mark(MetricsForbidden, false)
	case apierrors.IsInternalError(err), apierrors.IsTooManyRequests(err), statusCode(err) >= http.StatusInternalServerError:
		return mark(MetricsServerError, true)
	case errors.As(err, &netErr) && netErr.Timeout():
		return mark(MetricsTimeout, true)
	case errors.As(err, &netErr), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return mark(MetricsConnectFailed, true)
	}
	return mark(MetricsError, false)
}

func statusCode(err error) int32 {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return st.Status().Code
	}
	return 0
}
