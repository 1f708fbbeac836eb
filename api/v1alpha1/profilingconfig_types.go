package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pod annotations read by the operator.
const (
	AnnotationEnabled = "profiling.io/enabled"
	AnnotationPort    = "profiling.io/port"
	AnnotationPath    = "profiling.io/path"
	AnnotationService = "profiling.io/service"

	DefaultPprofPort = 6060
	DefaultPprofPath = "/debug/pprof"
)

// ProfileType names a Go pprof profile.
// +kubebuilder:validation:Enum=cpu;heap;goroutine;mutex;block;allocs;threadcreate
type ProfileType string

// ProfilingSelector chooses the pods a ProfilingConfig profiles. Only pods that also
// carry the annotation profiling.io/enabled: "true" are selected.
type ProfilingSelector struct {
	// Namespace whose pods are selected. Empty means the ProfilingConfig's own namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// LabelSelector narrows the selection; empty selects every annotated pod of the namespace.
	// +optional
	LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
}

// Thresholds trigger captures when a pod's usage crosses a percentage of its
// resources, as read by the node agent or reported by metrics.k8s.io (see source).
// Every trigger creates a ProfileCapture.
type Thresholds struct {
	// Enabled turns threshold-triggered capture on (default true when thresholds is set).
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// CPUThresholdPercent of the container's CPU request at or above which a capture is triggered.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=80
	// +optional
	CPUThresholdPercent int32 `json:"cpuThresholdPercent,omitempty"`

	// MemoryThresholdPercent of the container's memory request at or above which a capture is triggered.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=90
	// +optional
	MemoryThresholdPercent int32 `json:"memoryThresholdPercent,omitempty"`

	// CheckIntervalSeconds between two usage checks.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:default=30
	// +optional
	CheckIntervalSeconds int32 `json:"checkIntervalSeconds,omitempty"`

	// CooldownSeconds after a triggered capture during which the same pod is not captured again.
	// +kubebuilder:validation:Minimum=60
	// +kubebuilder:default=300
	// +optional
	CooldownSeconds int32 `json:"cooldownSeconds,omitempty"`

	// Basis of the percentage: Request (the container's request, else its limit) or
	// Limit (the limit, else the request).
	// +kubebuilder:validation:Enum=Request;Limit
	// +kubebuilder:default=Request
	// +optional
	Basis string `json:"basis,omitempty"`

	// Containers whose usage is evaluated; empty means every container of the pod.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	Containers []string `json:"containers,omitempty"`

	// Source of the usage evaluated: metricsServer (the operator reads metrics.k8s.io
	// every checkIntervalSeconds), agent (the kprof agent on the pod's node evaluates
	// its cgroup readings every second; pods on nodes without an agent are not
	// evaluated) or auto (the agent where one runs on the pod's node, metrics-server
	// otherwise).
	// +optional
	// +kubebuilder:default=auto
	Source ThresholdSource `json:"source,omitempty"`
}

// PodTrigger records a threshold-triggered capture of one pod. The operator reads
// these back after a restart, so a cooldown survives restarts and leader changes.
type PodTrigger struct {
	// Pod name.
	Pod string `json:"pod"`
	// UID of the pod.
	UID string `json:"uid"`
	// Time of the trigger.
	Time metav1.Time `json:"time"`
	// Reason, e.g. "cpu 93% of request ≥ 80%".
	// +kubebuilder:validation:MaxLength=256
	Reason string `json:"reason"`
	// Capture is the name of the ProfileCapture this trigger started (in the pod's
	// namespace), so re-executing that capture after a restart is not mistaken for a
	// new trigger inside the cooldown.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Capture string `json:"capture,omitempty"`
}

// OnDemand captures every selected pod on a fixed schedule.
type OnDemand struct {
	// Enabled turns scheduled capture on.
	// +optional
	Enabled bool `json:"enabled"`

	// IntervalSeconds between two scheduled captures of one pod (jittered by ±10%).
	// +kubebuilder:validation:Minimum=30
	// +kubebuilder:default=60
	// +optional
	IntervalSeconds int32 `json:"intervalSeconds,omitempty"`
}

// S3Config stores profiles in S3 or an S3-compatible object store. Profiles are
// spooled on the operator's disk first and uploaded with retries, so an outage of the
// store loses nothing.
// +kubebuilder:validation:XValidation:rule="!has(self.kmsKeyID) || (has(self.serverSideEncryption) && self.serverSideEncryption == 'aws:kms')",message="kmsKeyID requires serverSideEncryption aws:kms"
type S3Config struct {
	// Bucket name.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	Bucket string `json:"bucket"`

	// Region of the bucket. Default: from the operator's AWS configuration, else us-east-1 with a custom endpoint.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Region string `json:"region,omitempty"`

	// Prefix prepended to every key.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Prefix string `json:"prefix,omitempty"`

	// Endpoint of an S3-compatible store (e.g. http://minio.storage:9000); empty means AWS.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^https?://`
	Endpoint string `json:"endpoint,omitempty"`

	// UsePathStyle addresses the bucket in the path instead of the host name.
	// Default: true with a custom endpoint, false for AWS.
	// +optional
	UsePathStyle *bool `json:"usePathStyle,omitempty"`

	// ServerSideEncryption of stored objects.
	// +optional
	// +kubebuilder:validation:Enum=AES256;"aws:kms"
	ServerSideEncryption string `json:"serverSideEncryption,omitempty"`

	// KMSKeyID is the KMS key for serverSideEncryption aws:kms (default: the bucket's key).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	KMSKeyID string `json:"kmsKeyID,omitempty"`

	// CredentialsSecretRef names a Secret in the operator's namespace with keys
	// accessKeyID, secretAccessKey and optionally sessionToken, for stores outside AWS.
	// Without it the operator uses the AWS default credential chain (IRSA, Pod Identity,
	// instance role, environment).
	// +optional
	CredentialsSecretRef *SecretReference `json:"credentialsSecretRef,omitempty"`
}

// SecretReference names a Secret in the operator's namespace.
type SecretReference struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// LocalStorage stores profiles in a directory of the operator's filesystem.
type LocalStorage struct {
	// Path relative to the operator's profiles directory (--profiles-dir). Absolute
	// paths and ".." are rejected so a config cannot write outside that directory.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.split('/').exists(s, s == '..')",message="path must be relative and must not contain '..'"
	Path string `json:"path,omitempty"`

	// Prefix prepended to every key.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Prefix string `json:"prefix,omitempty"`

	// MaxAgeSeconds deletes this config's profiles captured longer ago than this. The
	// operator's own bounds (--profiles-max-age, --profiles-max-bytes) apply on top, to
	// the whole profiles directory. Unset: only those.
	// +optional
	// +kubebuilder:validation:Minimum=60
	MaxAgeSeconds int64 `json:"maxAgeSeconds,omitempty"`

	// MaxBytes bounds the size of this config's profiles (with their metadata): the
	// oldest are deleted until the rest fit. Unset: only the operator's bounds apply.
	// +optional
	// +kubebuilder:validation:Minimum=1048576
	MaxBytes int64 `json:"maxBytes,omitempty"`
}

// ProfilingConfigSpec defines which pods are profiled, when, and where profiles go.
// +kubebuilder:validation:XValidation:rule="!(has(self.s3Config) && has(self.localStorage))",message="set at most one of s3Config and localStorage"
// +kubebuilder:validation:XValidation:rule="!has(self.cpuProfileDurationSeconds) || !has(self.onDemand) || !self.onDemand.enabled || !has(self.onDemand.intervalSeconds) || !has(self.profileTypes) || !('cpu' in self.profileTypes) || self.cpuProfileDurationSeconds <= self.onDemand.intervalSeconds - (self.onDemand.intervalSeconds + 9) / 10 - 5 || (oldSelf.hasValue() && has(oldSelf.value().cpuProfileDurationSeconds) && oldSelf.value().cpuProfileDurationSeconds == self.cpuProfileDurationSeconds && has(oldSelf.value().onDemand) && has(oldSelf.value().onDemand.intervalSeconds) && oldSelf.value().onDemand.intervalSeconds == self.onDemand.intervalSeconds)",optionalOldSelf=true,message="cpuProfileDurationSeconds must be at most onDemand.intervalSeconds - ceil(onDemand.intervalSeconds/10) - 5 (22 at the minimum interval of 30, 49 at 60), so a round ends before the next one of the same pod can start; leave it unset to get min(30, that bound) (a pair stored by an earlier release, whose CRD defaulted it to 30, may stay while neither changes)",fieldPath=".cpuProfileDurationSeconds"
type ProfilingConfigSpec struct {
	// Selector chooses the profiled pods.
	// +optional
	Selector ProfilingSelector `json:"selector,omitempty"`

	// Thresholds trigger captures when usage crosses a limit.
	// +optional
	Thresholds *Thresholds `json:"thresholds,omitempty"`

	// OnDemand captures on a schedule.
	// +optional
	OnDemand *OnDemand `json:"onDemand,omitempty"`

	// S3Config stores profiles in S3. When neither s3Config nor localStorage is set,
	// profiles go to the operator's profiles directory.
	// +optional
	S3Config *S3Config `json:"s3Config,omitempty"`

	// LocalStorage stores profiles below the operator's profiles directory.
	// +optional
	LocalStorage *LocalStorage `json:"localStorage,omitempty"`

	// ProfileTypes to capture.
	// +kubebuilder:default={cpu,heap}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=7
	// +listType=set
	// +optional
	ProfileTypes []ProfileType `json:"profileTypes,omitempty"`

	// CPUProfileDurationSeconds is the length of a CPU profile. With onDemand enabled and
	// cpu among the profile types it must be at most
	// onDemand.intervalSeconds - ceil(onDemand.intervalSeconds/10) - 5 (the schedule is
	// jittered by 10%, and 5 s are kept for the other types), so rounds of one pod never
	// overlap. Unset, it is min(30, that bound) with onDemand enabled (22 at the minimum
	// interval of 30, 30 from an interval of 39 on), else 30.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=300
	// +optional
	CPUProfileDurationSeconds int32 `json:"cpuProfileDurationSeconds,omitempty"`

	// KeyTemplate lays out stored profiles. Placeholders:
	// {prefix} the storage prefix (s3Config.prefix or localStorage.prefix; an empty one drops its segment),
	// {namespace} {pod} {node} {container} of the profiled pod,
	// {service} the resource.opentelemetry.io/service.name annotation, else profiling.io/service, else the app.kubernetes.io/name label,
	// else the owning workload (Deployment, CronJob, StatefulSet, DaemonSet, Job), else the pod name,
	// {target} namespace/pod (in local mode: the target's name),
	// {type} the profile type (cpu, heap, ...),
	// {date} the capture day (2006-01-02, UTC), {timestamp} the capture time (20060102T150405.000Z, UTC),
	// {unix} the capture time in Unix seconds.
	// Anything else in braces is rejected, so a misspelt placeholder never ends up in keys
	// as literal text. Must contain {type} and {timestamp} or {unix}.
	// Default: {prefix}/{namespace}/{service}/{date}/{timestamp}_{pod}_{type}.pb.gz
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.replace('{prefix}', '').replace('{namespace}', '').replace('{service}', '').replace('{pod}', '').replace('{node}', '').replace('{container}', '').replace('{target}', '').replace('{type}', '').replace('{date}', '').replace('{timestamp}', '').replace('{unix}', '').matches('[{][^{}]*[}]')",messageExpression="'keyTemplate: unknown placeholder ' + self.replace('{prefix}', '').replace('{namespace}', '').replace('{service}', '').replace('{pod}', '').replace('{node}', '').replace('{container}', '').replace('{target}', '').replace('{type}', '').replace('{date}', '').replace('{timestamp}', '').replace('{unix}', '').find('[{][^{}]*[}]') + ' (known: {prefix} {namespace} {service} {pod} {node} {container} {target} {type} {date} {timestamp} {unix})'"
	// +kubebuilder:validation:XValidation:rule="self.contains('{type}') && (self.contains('{timestamp}') || self.contains('{unix}'))",message="keyTemplate must contain {type} and {timestamp} or {unix}"
	KeyTemplate string `json:"keyTemplate,omitempty"`
}

// Condition types of a ProfilingConfig.
const (
	// ConditionReady is True when the config is accepted, its selector valid and its store usable.
	ConditionReady = "Ready"
	// ConditionCapturing reports the outcome of the most recent capture.
	ConditionCapturing = "Capturing"
	// ConditionStorageReady reports whether the remote store accepts uploads. When it is
	// False, profiles wait in the spool; the reason names the problem: NoSuchBucket,
	// AccessDenied, InvalidCredentials, EndpointUnreachable, VerifyFailed, StoreError.
	ConditionStorageReady = "StorageReady"
	// ConditionMetricsAvailable reports whether pod usage can be read from metrics.k8s.io
	// for threshold evaluation (reason MetricsUnavailable when it cannot; scheduled
	// captures go on).
	ConditionMetricsAvailable = "MetricsAvailable"
)

// MaxLastTriggers bounds status.lastTriggers.
const MaxLastTriggers = 256

// ProfilingConfigStatus is the observed state of a ProfilingConfig.
type ProfilingConfigStatus struct {
	// ObservedGeneration is the generation last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// ActivePods is the number of pods currently selected and reachable (Running, Ready, with an IP).
	// +optional
	ActivePods int32 `json:"activePods"`

	// TotalProfiles counts profiles captured and stored.
	// +optional
	TotalProfiles int64 `json:"totalProfiles"`

	// TotalFailures counts capture attempts that did not store a profile.
	// +optional
	TotalFailures int64 `json:"totalFailures"`

	// TotalUploads counts profiles the remote store confirmed (stored and verified).
	// +optional
	TotalUploads int64 `json:"totalUploads"`

	// LastProfileTime is when the most recent profile was stored.
	// +optional
	LastProfileTime *metav1.Time `json:"lastProfileTime,omitempty"`

	// LastTriggers holds the most recent threshold trigger of each pod still in its
	// cooldown, and the most recent ones before that, newest first (bounded).
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +listType=map
	// +listMapKey=uid
	LastTriggers []PodTrigger `json:"lastTriggers,omitempty"`

	// Conditions: Ready, Capturing, StorageReady, MetricsAvailable.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ProfilingConfig selects annotated pods and captures their pprof profiles on a
// schedule or when usage crosses thresholds.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pc;kpc,categories=kprof
// +kubebuilder:printcolumn:name="Namespace-Selector",type=string,JSONPath=`.spec.selector.namespace`
// +kubebuilder:printcolumn:name="Active-Pods",type=integer,JSONPath=`.status.activePods`
// +kubebuilder:printcolumn:name="Profiles",type=integer,JSONPath=`.status.totalProfiles`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ProfilingConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ProfilingConfigSpec   `json:"spec,omitempty"`
	Status ProfilingConfigStatus `json:"status,omitempty"`
}

// ProfilingConfigList is a list of ProfilingConfigs.
// +kubebuilder:object:root=true
type ProfilingConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ProfilingConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ProfilingConfig{}, &ProfilingConfigList{})
}
