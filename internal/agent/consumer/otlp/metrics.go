package otlp

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
)

// MetricsName is the name of the Metrics consumer.
const MetricsName = "otlp-metrics"

var _ router.MetricsConsumer = (*Metrics)(nil)

// Metrics exports each metrics reading to an OTLP gRPC endpoint (see
// ConvertMetrics).
type Metrics struct {
	cfg  Config
	conn *conn
}

// NewMetrics fills in cfg's defaults, validates it and returns a Metrics consumer. It
// does not connect: the first export does.
func NewMetrics(cfg Config) (*Metrics, error) {
	if err := cfg.build(); err != nil {
		return nil, fmt.Errorf("%s consumer: %w", MetricsName, err)
	}
	return &Metrics{cfg: cfg, conn: newConn(cfg, MetricsName)}, nil
}

// Name implements router.MetricsConsumer.
func (m *Metrics) Name() string { return MetricsName }

// Consume implements router.MetricsConsumer: it converts the reading and
// exports it in one request. A reading without points exports nothing. A
// request whose data points were all rejected is an error; a partial
// rejection is logged.
func (m *Metrics) Consume(ctx context.Context, r *profile.Metrics) error {
	if r == nil {
		return fmt.Errorf("%s: nil reading", MetricsName)
	}
	if len(r.Points) == 0 {
		return nil
	}
	md := ConvertMetrics(r)
	what := fmt.Sprintf("reading (%d metrics, %d points)", md.MetricCount(), md.DataPointCount())
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	res, err := m.conn.export(ctx, what, func(ctx context.Context, cc *grpc.ClientConn, opts ...grpc.CallOption) (result, error) {
		resp, err := pmetricotlp.NewGRPCClient(cc).Export(ctx, req, opts...)
		if err != nil {
			return result{}, err
		}
		ps := resp.PartialSuccess()
		return result{rejected: ps.RejectedDataPoints(), message: ps.ErrorMessage()}, nil
	})
	if err == nil {
		err = m.conn.partial(what, res, int64(md.DataPointCount()), "data_points")
	}
	if err != nil {
		return fmt.Errorf("%s: %w", MetricsName, err)
	}
	return nil
}

// Shutdown implements router.MetricsConsumer: it closes the connection. It is
// idempotent and safe without a Consume.
func (m *Metrics) Shutdown(context.Context) error {
	return m.conn.close()
}

// metricDescriptions are the descriptions of the metrics the agent reads.
var metricDescriptions = map[string]string{
	profile.ContainerCPUTime:     "CPU time used by the container since it started.",
	profile.ContainerMemoryUsage: "Memory in use by the container (cgroup memory.current or memory.usage_in_bytes).",
	profile.PodCPUTime:           "CPU time used by the pod since it started.",
	profile.PodMemoryUsage:       "Memory in use by the pod.",
	profile.AgentSamples:         "Samples the kprof agent took.",
	profile.AgentLost:            "Samples lost in the kernel, by reason.",
	profile.AgentConsumerEvents:  "Events per agent consumer and result.",
}

// ConvertMetrics returns r as OTLP metrics: one resource (r.Labels: node →
// k8s.node.name and host.name, cluster → k8s.cluster.name), one scope
// (ScopeName), one metric per name, kind and unit in the order first seen. A
// Counter is a cumulative monotonic Sum with its Start as start time; a Gauge
// is a Gauge. Point labels become attributes (container_id → container.id,
// pod → k8s.pod.name, namespace → k8s.namespace.name, container →
// k8s.container.name, pod_uid → k8s.pod.uid, others as given); empty label
// values are omitted. Values are doubles. r is only read.
func ConvertMetrics(r *profile.Metrics) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	putNodeLabels(rm.Resource().Attributes(), r.Labels)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(ScopeName)
	sm.Scope().SetVersion(moduleVersion())
	ts := pcommon.NewTimestampFromTime(r.Time)

	type metricKey struct {
		name, unit string
		kind       profile.PointKind
	}
	byKey := map[metricKey]pmetric.NumberDataPointSlice{}
	for i := range r.Points {
		pt := &r.Points[i]
		k := metricKey{pt.Name, pt.Unit, pt.Kind}
		dps, ok := byKey[k]
		if !ok {
			m := sm.Metrics().AppendEmpty()
			m.SetName(pt.Name)
			m.SetUnit(pt.Unit)
			m.SetDescription(metricDescriptions[pt.Name])
			if pt.Kind == profile.Counter {
				sum := m.SetEmptySum()
				sum.SetIsMonotonic(true)
				sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
				dps = sum.DataPoints()
			} else {
				dps = m.SetEmptyGauge().DataPoints()
			}
			byKey[k] = dps
		}
		dp := dps.AppendEmpty()
		dp.SetTimestamp(ts)
		if pt.Kind == profile.Counter && !pt.Start.IsZero() {
			dp.SetStartTimestamp(pcommon.NewTimestampFromTime(pt.Start))
		}
		dp.SetDoubleValue(pt.Value)
		for _, l := range slices.Sorted(maps.Keys(pt.Labels)) {
			if v := pt.Labels[l]; v != "" && l != "" {
				dp.Attributes().PutStr(pointAttrKey(l), v)
			}
		}
	}
	return md
}
