package profile

import "time"

// Metrics is one reading of resource usage on the node (per pod and container,
// from cgroups) and of the agent's own counters, taken at one instant. The
// agent routes it, like profile events, to the consumers that export metrics
// (OTLP metrics).
type Metrics struct {
	// Time is when the values were read.
	Time time.Time
	// Labels common to every point: node, cluster.
	Labels map[string]string
	Points []Point
}

// PointKind says how a point's value behaves over time.
type PointKind int

const (
	// Gauge is a value at Time (memory in use).
	Gauge PointKind = iota
	// Counter is a monotonic total since Point.Start (CPU time used, samples
	// taken); a reset (a restarted container) shows as a new Start.
	Counter
)

// Metric names. Usage points follow the OpenTelemetry semantic conventions;
// the agent's counters are kprof's own.
const (
	// ContainerCPUTime is the CPU time a container used since it started, in
	// seconds (Counter); labels container_id, pod_uid, and pod, namespace,
	// container when the pod is known.
	ContainerCPUTime = "container.cpu.time"
	// ContainerMemoryUsage is a container's memory in use in bytes (Gauge):
	// cgroup v2 memory.current, v1 memory.usage_in_bytes.
	ContainerMemoryUsage = "container.memory.usage"
	// PodCPUTime and PodMemoryUsage are the same for a whole pod (its cgroup);
	// labels pod_uid, and pod and namespace when known.
	PodCPUTime     = "k8s.pod.cpu.time"
	PodMemoryUsage = "k8s.pod.memory.usage"
	// AgentSamples counts the samples the agent took (Counter).
	AgentSamples = "kprof.agent.samples"
	// AgentLost counts samples lost in the kernel: a full count or stack map
	// (Counter); label reason.
	AgentLost = "kprof.agent.lost"
	// AgentConsumerEvents counts events per consumer and result (delivered,
	// failed, dropped) (Counter); labels consumer, result.
	AgentConsumerEvents = "kprof.agent.consumer.events"
)

// Point is one value of one metric.
type Point struct {
	Name string
	Kind PointKind
	// Unit in UCUM: "s", "By", "{sample}", "{event}".
	Unit  string
	Value float64
	// Start is when a Counter began counting; zero for a Gauge.
	Start time.Time
	// Labels of this point only.
	Labels map[string]string
}
