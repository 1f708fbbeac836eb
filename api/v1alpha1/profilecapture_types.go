package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CaptureTrigger says why a ProfileCapture was created.
// +kubebuilder:validation:Enum=User;Threshold
type CaptureTrigger string

const (
	// TriggerUser: somebody asked (kubectl create, kprof capture pod --via-operator).
	TriggerUser CaptureTrigger = "User"
	// TriggerThreshold: a pod's usage crossed its ProfilingConfig's thresholds; the
	// config's cooldown applies.
	TriggerThreshold CaptureTrigger = "Threshold"
)

// ThresholdSource names where a pod's usage is read for threshold evaluation.
// +kubebuilder:validation:Enum=metricsServer;agent;auto
type ThresholdSource string

const (
	// SourceMetricsServer: the operator reads metrics.k8s.io every checkIntervalSeconds.
	SourceMetricsServer ThresholdSource = "metricsServer"
	// SourceAgent: the kprof agent on the pod's node evaluates the cgroup readings it
	// takes every second; pods on nodes without an agent are not evaluated.
	SourceAgent ThresholdSource = "agent"
	// SourceAuto: the agent where one runs on the pod's node, metrics-server otherwise.
	SourceAuto ThresholdSource = "auto"
)

// Phase of a ProfileCapture.
// +kubebuilder:validation:Enum=Pending;Capturing;Stored;Failed;Skipped
type CapturePhase string

const (
	CapturePending   CapturePhase = "Pending"
	CaptureCapturing CapturePhase = "Capturing"
	CaptureStored    CapturePhase = "Stored"
	CaptureFailed    CapturePhase = "Failed"
	CaptureSkipped   CapturePhase = "Skipped"
)

// ProfileTypeEBPFCPU is the type of the node agent's eBPF CPU profile of a pod, stored
// beside the app's own pprof profiles.
const ProfileTypeEBPFCPU = "ebpf-cpu"

// Labels and annotations of ProfileCaptures.
const (
	// LabelCapturePod carries spec.pod, so captures of one pod can be listed by label.
	LabelCapturePod = "profiling.io/pod"
	// LabelCaptureNode carries the node the agent that created a capture runs on.
	LabelCaptureNode = "profiling.io/node"
)

// ProfilingConfigReference names a ProfilingConfig.
type ProfilingConfigReference struct {
	// Namespace of the ProfilingConfig; empty means the ProfileCapture's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// Name of the ProfilingConfig.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ThresholdCrossing describes the usage that crossed a threshold.
type ThresholdCrossing struct {
	// Source that evaluated the usage: agent or metricsServer.
	// +kubebuilder:validation:Enum=metricsServer;agent
	Source ThresholdSource `json:"source"`
	// Resource that crossed: cpu or memory.
	// +kubebuilder:validation:Enum=cpu;memory
	Resource string `json:"resource"`
	// Container whose usage crossed.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Container string `json:"container,omitempty"`
	// CrossedAt is when the usage was read at or above the threshold.
	CrossedAt metav1.MicroTime `json:"crossedAt"`
}

// ProfileCaptureSpec is one request to capture one pod's profiles. It cannot be changed
// once created.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: create a new ProfileCapture"
// +kubebuilder:validation:XValidation:rule="self.trigger != 'Threshold' || has(self.threshold)",message="a Threshold capture names its crossing in threshold"
type ProfileCaptureSpec struct {
	// Pod to capture, in the ProfileCapture's namespace. It must carry the annotation
	// profiling.io/enabled: "true" and be selected by a ProfilingConfig, whose storage
	// and policy are used.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Pod string `json:"pod"`

	// ProfileTypes to capture. Default: the ProfilingConfig's profileTypes.
	// +optional
	// +kubebuilder:validation:MaxItems=7
	// +listType=set
	ProfileTypes []ProfileType `json:"profileTypes,omitempty"`

	// CPUDurationSeconds is the length of the CPU profile. Default: the
	// ProfilingConfig's cpuProfileDurationSeconds, else 30.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300
	CPUDurationSeconds int32 `json:"cpuDurationSeconds,omitempty"`

	// Reason is stored with the profiles, e.g. "cpu 93% of request ≥ 80%" or "incident 4711".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Reason string `json:"reason,omitempty"`

	// ProfilingConfig whose policy and storage are used. It must select the pod. Default:
	// the first ProfilingConfig (by namespace/name) that selects the pod.
	// +optional
	ProfilingConfig *ProfilingConfigReference `json:"profilingConfig,omitempty"`

	// Requester says who asked: a user name, kprof-agent/<node>, kprof-operator.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Requester string `json:"requester,omitempty"`

	// Trigger is User (default) or Threshold; a Threshold capture inside the pod's
	// cooldown (status.lastTriggers of the ProfilingConfig) is Skipped.
	// +optional
	// +kubebuilder:default=User
	Trigger CaptureTrigger `json:"trigger,omitempty"`

	// Threshold is the crossing that triggered a Threshold capture.
	// +optional
	Threshold *ThresholdCrossing `json:"threshold,omitempty"`

	// TTLSecondsAfterFinished deletes the ProfileCapture (not its profiles) this long
	// after it finished. Default one day.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:default=86400
	TTLSecondsAfterFinished *int32 `json:"ttlSecondsAfterFinished,omitempty"`
}

// CapturedProfile is one stored profile of a ProfileCapture.
type CapturedProfile struct {
	// Type of the profile: a pprof type (cpu, heap, ...) or ebpf-cpu (the node agent's
	// eBPF CPU profile of the pod).
	// +kubebuilder:validation:MaxLength=32
	Type string `json:"type"`
	// Location of the stored profile: s3://bucket/key, or file://path below the
	// operator's profiles directory.
	// +kubebuilder:validation:MaxLength=2048
	Location string `json:"location"`
	// Size in bytes.
	Size int64 `json:"size"`
	// SHA256 of the stored bytes, hex.
	// +kubebuilder:validation:MaxLength=64
	SHA256 string `json:"sha256"`
}

// MaxCapturedProfiles bounds status.profiles: every pprof type and the eBPF profile.
const MaxCapturedProfiles = 8

// Condition types of a ProfileCapture.
const (
	// ConditionComplete is True when the capture ended (Stored, Failed or Skipped).
	ConditionComplete = "Complete"
	// ConditionFlightRecorder reports the node agent's eBPF profile of the pod.
	ConditionFlightRecorder = "FlightRecorder"
)

// ProfileCaptureStatus is the observed state of a ProfileCapture.
type ProfileCaptureStatus struct {
	// Phase: Pending, Capturing, Stored, Failed or Skipped.
	// +optional
	Phase CapturePhase `json:"phase,omitempty"`

	// ProfilingConfig whose policy and storage were used (namespace/name).
	// +optional
	ProfilingConfig string `json:"profilingConfig,omitempty"`

	// Node the pod runs on.
	// +optional
	Node string `json:"node,omitempty"`

	// StartTime is when capturing started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// CompletionTime is when the capture ended.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// Profiles stored, one entry per profile.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Profiles []CapturedProfile `json:"profiles,omitempty"`

	// Message says what happened, and why a capture failed or was skipped.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`

	// Conditions: Complete, FlightRecorder.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ProfileCapture is one request to capture one pod's profiles, and its result. Every
// threshold trigger creates one, so they are the history of what was caught and why.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pcap;kpcap,categories=kprof
// +kubebuilder:printcolumn:name="Pod",type=string,JSONPath=`.spec.pod`
// +kubebuilder:printcolumn:name="Trigger",type=string,JSONPath=`.spec.trigger`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.spec.reason`
// +kubebuilder:printcolumn:name="Requester",type=string,JSONPath=`.spec.requester`,priority=1
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ProfileCapture struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ProfileCaptureSpec   `json:"spec"`
	Status ProfileCaptureStatus `json:"status,omitempty"`
}

// ProfileCaptureList is a list of ProfileCaptures.
// +kubebuilder:object:root=true
type ProfileCaptureList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProfileCapture `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ProfileCapture{}, &ProfileCaptureList{})
}
