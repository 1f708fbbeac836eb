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
)
