package profile

// Label keys of Event.Labels and Sample.Labels. The producers (collector,
// attributor, usage reader, flight recorder) write them and the consumers read
// them, so each key is spelled once, here.
const (
	// Event labels, common to every sample of an interval.
	LabelNode    = "node"
	LabelCluster = "cluster"

	// Sample labels: the process, then where it runs in Kubernetes.
	LabelPID         = "pid"
	LabelTID         = "tid" // Sample.TID as the pprof and OTLP outputs name it
	LabelComm        = "comm"
	LabelExe         = "exe"
	LabelContainerID = "container_id"
	LabelPod         = "pod"
	LabelNamespace   = "namespace"
	LabelContainer   = "container"
	LabelPodUID      = "pod_uid"

	// The service identity of a pod's sample (internal/serviceid.ForPod), set by the
	// attributor when it knows the pod; without them, a consumer names the service by
	// the executable (serviceid.FromLabels).
	LabelService          = "service"
	LabelServiceNamespace = "service_namespace"
	LabelServiceInstance  = "service_instance_id"
	LabelServiceVersion   = "service_version"
)
