package otlp

import (
	"maps"
	"slices"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/kprof/kprof/internal/agent/profile"
)

// Semantic-convention attribute keys the consumers write.
const (
	attrK8sPodName       = "k8s.pod.name"
	attrK8sNamespaceName = "k8s.namespace.name"
	attrK8sNodeName      = "k8s.node.name"
	attrK8sContainerName = "k8s.container.name"
	attrK8sPodUID        = "k8s.pod.uid"
	attrK8sClusterName   = "k8s.cluster.name"
	attrContainerID      = "container.id"
	attrHostName         = "host.name"
	attrProcessPID       = "process.pid"
	attrProcessExecName  = "process.executable.name"
	attrProcessExecPath  = "process.executable.path"
	attrThreadID         = "thread.id"
	attrServiceName      = "service.name"
	attrServiceNamespace = "service.namespace"
	attrServiceInstance  = "service.instance.id"
	attrServiceVersion   = "service.version"
	// attrFrameType marks a location's kind; kernel frames get frameTypeKernel,
	// as the OpenTelemetry eBPF profiler marks them.
	attrFrameType   = "profile.frame.type"
	frameTypeKernel = "kernel"
	// Build IDs of a mapping: GNU (hex) or Go.
	attrBuildIDGNU = "process.executable.build_id.gnu"
	attrBuildIDGo  = "process.executable.build_id.go"
	// kprof's own profile attributes.
	attrConfig        = "kprof.config"
	attrConfigVersion = "kprof.config.version"
	attrEvent         = "kprof.event"
	// scopeAttrConfig is kprof.config as a scope attribute, spelt as a Prometheus label
	// name: Pyroscope makes resource and scope attributes series labels but hides
	// dotted names from clients that do not ask for UTF-8 label names (Grafana's
	// label pickers among them).
	scopeAttrConfig = "kprof_config"

	// ScopeName is the instrumentation scope of everything the consumers export.
	ScopeName = "github.com/kprof/kprof/agent"
)

// podLabelKeys maps the agent's pod and container labels to their
// semantic-convention attributes.
var podLabelKeys = map[string]string{
	profile.LabelContainerID: attrContainerID,
	profile.LabelPod:         attrK8sPodName,
	profile.LabelNamespace:   attrK8sNamespaceName,
	profile.LabelContainer:   attrK8sContainerName,
	profile.LabelPodUID:      attrK8sPodUID,
	// The pod's service identity (serviceid.ForPod), as the attributor labels it.
	profile.LabelService:          attrServiceName,
	profile.LabelServiceNamespace: attrServiceNamespace,
	profile.LabelServiceInstance:  attrServiceInstance,
	profile.LabelServiceVersion:   attrServiceVersion,
}

// processLabelKeys are the sample labels that identify the process: they
// become resource attributes and split the event into resources.
var processLabelKeys = map[string]string{
	profile.LabelComm: attrProcessExecName,
	profile.LabelExe:  attrProcessExecPath,
}

// putNodeLabels sets the resource attributes of the common (event or
// reading) labels: node → k8s.node.name and host.name, cluster →
// k8s.cluster.name, others under their own names. Empty values are omitted.
func putNodeLabels(attrs pcommon.Map, labels map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		v := labels[k]
		if v == "" {
			continue
		}
		switch k {
		case profile.LabelNode:
			attrs.PutStr(attrK8sNodeName, v)
			attrs.PutStr(attrHostName, v)
		case profile.LabelCluster:
			attrs.PutStr(attrK8sClusterName, v)
		default:
			attrs.PutStr(k, v)
		}
	}
}

// pointAttrKey is the attribute key of a metric point label.
func pointAttrKey(label string) string {
	if k, ok := podLabelKeys[label]; ok {
		return k
	}
	return label
}

// pidValue is a sample's process ID: PID, else its pid label.
func pidValue(pid int32, labels map[string]string) (int64, bool) {
	if pid != 0 {
		return int64(pid), true
	}
	if v, err := strconv.ParseInt(labels[profile.LabelPID], 10, 64); err == nil {
		return v, true
	}
	return 0, false
}
