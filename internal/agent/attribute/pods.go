package attribute

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	corev1informers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Informer indexes.
const (
	containerIDIndex = "containerID" // bare container ID (scheme stripped) of every container status
	podUIDIndex      = "podUID"
)

// newPodInformer builds (does not start) an informer over the pods bound to nodeName,
// indexed by container ID and pod UID, that keeps only what attribution reads. onErr
// receives every list or watch failure but those of a normal close.
func newPodInformer(client kubernetes.Interface, nodeName string, resync time.Duration, log *slog.Logger, onErr func(error)) (cache.SharedIndexInformer, error) {
	selector := fields.OneTermEqualSelector("spec.nodeName", nodeName).String()
	inf := corev1informers.NewFilteredPodInformer(client, metav1.NamespaceAll, resync,
		cache.Indexers{containerIDIndex: indexByContainerID, podUIDIndex: indexByPodUID},
		func(o *metav1.ListOptions) { o.FieldSelector = selector })
	if err := inf.SetTransform(slimPod); err != nil {
		return nil, err
	}
	err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
		switch {
		case ctx.Err() != nil, errors.Is(err, io.EOF):
			// Shutting down, or the watch closed normally.
		case apierrors.IsResourceExpired(err), apierrors.IsGone(err), errors.Is(err, io.ErrUnexpectedEOF):
			log.Debug("pod watch closed, relisting", "node", nodeName, "err", err)
		default:
			onErr(err)
			log.Warn("pod watch failed, retrying", "node", nodeName, "err", err)
		}
	})
	if err != nil {
		return nil, err
	}
	return inf, nil
}

// allStatuses lists a pod's container statuses: init, regular and ephemeral containers.
func allStatuses(pod *corev1.Pod) [][]corev1.ContainerStatus {
	return [][]corev1.ContainerStatus{
		pod.Status.InitContainerStatuses,
		pod.Status.ContainerStatuses,
		pod.Status.EphemeralContainerStatuses,
	}
}

func indexByContainerID(obj any) ([]string, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	var ids []string
	for _, statuses := range allStatuses(pod) {
		for _, st := range statuses {
			if _, id := splitContainerID(st.ContainerID); id != "" {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

func indexByPodUID(obj any) ([]string, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.UID == "" {
		return nil, nil
	}
	return []string{string(pod.UID)}, nil
}

// splitContainerID splits a status's "<runtime>://<id>" into a Process.Runtime name and id.
func splitContainerID(s string) (runtime, id string) {
	scheme, id, ok := strings.Cut(s, "://")
	if !ok {
		return "", s
	}
	return scheme, id // the schemes kubelet writes: "containerd", "cri-o", "docker"
}

// slimPod keeps of a pod what attribution and the node thresholds read: its identity,
// labels, profiling.io and service annotations (serviceid), owners, each container's
// name, image (serviceid's version), ports and resources
// (restart policy for init containers: native sidecars), the container IDs of its
// statuses, and its phase, Ready condition and pod IP (internal/podtarget.Select). The
// informer holds every pod of the node for the agent's lifetime: the rest (env, volumes,
// managed fields, other annotations) is dropped.
func slimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a cache.DeletedFinalStateUnknown
	}
	slim := func(in []corev1.ContainerStatus) []corev1.ContainerStatus {
		if len(in) == 0 {
			return nil
		}
		out := make([]corev1.ContainerStatus, len(in))
		for i, st := range in {
			out[i] = corev1.ContainerStatus{Name: st.Name, ContainerID: st.ContainerID}
		}
		return out
	}
	containers := func(in []corev1.Container) []corev1.Container {
		if len(in) == 0 {
			return nil
		}
		out := make([]corev1.Container, len(in))
		for i, c := range in {
			out[i] = corev1.Container{Name: c.Name, Image: c.Image, Ports: c.Ports, Resources: c.Resources, RestartPolicy: c.RestartPolicy}
		}
		return out
	}
	var annotations map[string]string
	for k, v := range pod.Annotations {
		if strings.HasPrefix(k, profilingAnnotationPrefix) || strings.HasPrefix(k, otelServiceAnnotationPrefix) {
			if annotations == nil {
				annotations = map[string]string{}
			}
			annotations[k] = v
		}
	}
	var conditions []corev1.PodCondition
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			conditions = append(conditions, corev1.PodCondition{Type: c.Type, Status: c.Status})
		}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:              pod.Name,
			Namespace:         pod.Namespace,
			UID:               pod.UID,
			ResourceVersion:   pod.ResourceVersion,
			CreationTimestamp: pod.CreationTimestamp,
			DeletionTimestamp: pod.DeletionTimestamp,
			Labels:            pod.Labels,
			Annotations:       annotations,
			OwnerReferences:   pod.OwnerReferences,
		},
		Spec: corev1.PodSpec{
			NodeName:       pod.Spec.NodeName,
			Containers:     containers(pod.Spec.Containers),
			InitContainers: containers(pod.Spec.InitContainers),
		},
		Status: corev1.PodStatus{
			Phase:                      pod.Status.Phase,
			Conditions:                 conditions,
			PodIP:                      pod.Status.PodIP,
			InitContainerStatuses:      slim(pod.Status.InitContainerStatuses),
			ContainerStatuses:          slim(pod.Status.ContainerStatuses),
			EphemeralContainerStatuses: slim(pod.Status.EphemeralContainerStatuses),
		},
	}, nil
}

// The pod annotations slimPod keeps: profiling.io/enabled, port, path, service, and the
// OpenTelemetry service identity (serviceid: resource.opentelemetry.io/service.name,
// .namespace, .version).
const (
	profilingAnnotationPrefix   = "profiling.io/"
	otelServiceAnnotationPrefix = "resource.opentelemetry.io/service."
)

// podOf is what the informer knows of a process's pod: by container ID first, else by the
// pod UID of its cgroup path (a container whose status is not yet posted). container and
// runtime are "" when only the pod is known.
type podOf struct {
	pod                *corev1.Pod
	container, runtime string
}

func lookupPod(idx cache.Indexer, containerID, podUID string) (podOf, bool) {
	if containerID != "" {
		objs, _ := idx.ByIndex(containerIDIndex, containerID)
		for _, obj := range objs {
			pod, ok := obj.(*corev1.Pod)
			if !ok {
				continue
			}
			for _, statuses := range allStatuses(pod) {
				for _, st := range statuses {
					if rt, id := splitContainerID(st.ContainerID); id == containerID {
						return podOf{pod: pod, container: st.Name, runtime: rt}, true
					}
				}
			}
		}
	}
	if podUID != "" {
		objs, _ := idx.ByIndex(podUIDIndex, podUID)
		for _, obj := range objs {
			if pod, ok := obj.(*corev1.Pod); ok {
				return podOf{pod: pod}, true
			}
		}
	}
	return podOf{}, false
}
