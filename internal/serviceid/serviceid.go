// Package serviceid names the service a profile belongs to, in one place for the
// operator (the {service} key placeholder) and the agent (the OTLP resource, the
// Datadog service tag): the OpenTelemetry Kubernetes convention for a pod, the
// executable's name for a process outside a cluster.
package serviceid

import (
	"path"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

// Pod annotations and labels the identity reads, most specific first.
const (
	AnnotationOTelName      = "resource.opentelemetry.io/service.name"
	AnnotationOTelNamespace = "resource.opentelemetry.io/service.namespace"
	AnnotationOTelVersion   = "resource.opentelemetry.io/service.version"
	AnnotationService       = profilingv1alpha1.AnnotationService
	LabelAppName            = "app.kubernetes.io/name"
	LabelAppVersion         = "app.kubernetes.io/version"
	// LabelPodTemplateHash is the label a Deployment puts on its ReplicaSets' pods.
	LabelPodTemplateHash = "pod-template-hash"
)

// Identity is a workload's service: OpenTelemetry's service.name,
// service.namespace, service.instance.id and service.version. Empty fields are
// unknown.
type Identity struct {
	Name, Namespace, InstanceID, Version string
}

// ForPod returns the identity of container (may be "") of pod:
//   - Name: the resource.opentelemetry.io/service.name annotation, else profiling.io/service,
//     else the app.kubernetes.io/name label, else the owning workload (a ReplicaSet's
//     Deployment, a Job's CronJob, a StatefulSet, DaemonSet, Job or ReplicaSet), else the pod
//     name, else the container name;
//   - Namespace: the resource.opentelemetry.io/service.namespace annotation, else the pod's;
//   - InstanceID: namespace.pod.container (namespace.pod without a container, "" without a pod name);
//   - Version: the resource.opentelemetry.io/service.version annotation, else the
//     app.kubernetes.io/version label, else the tag of the container's image.
func ForPod(pod *corev1.Pod, container string) Identity {
	if pod == nil {
		return Identity{Name: container}
	}
	id := Identity{
		Name:      Name(pod, container),
		Namespace: first(pod.Annotations[AnnotationOTelNamespace], pod.Namespace),
		Version: first(pod.Annotations[AnnotationOTelVersion], pod.Labels[LabelAppVersion],
			imageTag(containerImage(pod, container))),
	}
	if pod.Name != "" {
		id.InstanceID = pod.Namespace + "." + pod.Name
		if container != "" {
			id.InstanceID += "." + container
		}
	}
	return id
}

// Name is ForPod(pod, container).Name.
func Name(pod *corev1.Pod, container string) string {
	if pod == nil {
		return container
	}
	return first(pod.Annotations[AnnotationOTelName], pod.Annotations[AnnotationService],
		pod.Labels[LabelAppName], workload(pod), pod.Name, container)
}

// UnknownName names a process of which nothing is known (it exited before /proc was
// read): a backend's "unknown_service" would say less.
const UnknownName = "unidentified-process"

// ForExecutable returns the identity of a process outside a cluster: its
// executable's file name from exe (the /proc/PID/exe target, " (deleted)" dropped),
// else comm (a kernel thread has no executable), else UnknownName.
func ForExecutable(exe, comm string) Identity {
	exe = strings.TrimSpace(strings.TrimSuffix(exe, " (deleted)"))
	if exe != "" {
		if b := path.Base(exe); b != "/" && b != "." {
			return Identity{Name: b}
		}
	}
	return Identity{Name: first(comm, UnknownName)}
}

// cronJobSuffix is the suffix the CronJob controller gives its Jobs: the scheduled time
// in minutes since the epoch (8 digits and more).
var cronJobSuffix = regexp.MustCompile(`-[0-9]{8,}$`)

// workload names the controller owning pod by the owner reference alone: a ReplicaSet
// named <deployment>-<pod-template-hash> gives the Deployment, a Job named
// <cronjob>-<minutes> gives the CronJob. "" when no controller owns the pod.
func workload(pod *corev1.Pod) string {
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller || ref.Name == "" {
			continue
		}
		switch ref.Kind {
		case "ReplicaSet":
			if h := pod.Labels[LabelPodTemplateHash]; h != "" && strings.HasSuffix(ref.Name, "-"+h) {
				return strings.TrimSuffix(ref.Name, "-"+h)
			}
			return ref.Name
		case "Job":
			if loc := cronJobSuffix.FindStringIndex(ref.Name); loc != nil && loc[0] > 0 {
				return ref.Name[:loc[0]]
			}
			return ref.Name
		case "StatefulSet", "DaemonSet", "ReplicationController", "CronJob", "Deployment":
			return ref.Name
		}
	}
	return ""
}

// containerImage is the image of container in pod's spec (init containers included),
// else of its only container.
func containerImage(pod *corev1.Pod, container string) string {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name == container {
				return c.Image
			}
		}
	}
	if container == "" && len(pod.Spec.Containers) == 1 {
		return pod.Spec.Containers[0].Image
	}
	return ""
}

// imageTag is the tag of an image reference ("registry:5000/app:1.2@sha256:…" → "1.2"),
// "" without one.
func imageTag(image string) string {
	image, _, _ = strings.Cut(image, "@")
	name := image[strings.LastIndex(image, "/")+1:]
	_, tag, _ := strings.Cut(name, ":")
	return tag
}

func first(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}
