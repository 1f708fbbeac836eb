package attribute

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kprof/kprof/internal/serviceid"
)

func statuses(ids ...string) []corev1.ContainerStatus {
	var out []corev1.ContainerStatus
	for i, id := range ids {
		out = append(out, corev1.ContainerStatus{Name: "c" + itoa(i), ContainerID: id, Image: "img"})
	}
	return out
}

func TestIndexByContainerID(t *testing.T) {
	tests := []struct {
		name   string
		status corev1.PodStatus
		want   []string
	}{
		{"containerd, CRI-O and Docker schemes are stripped",
			corev1.PodStatus{ContainerStatuses: statuses("containerd://aaa", "cri-o://bbb", "docker://ccc")}, []string{"aaa", "bbb", "ccc"}},
		{"init and ephemeral containers are indexed too",
			corev1.PodStatus{InitContainerStatuses: statuses("containerd://init"), ContainerStatuses: statuses("containerd://main"), EphemeralContainerStatuses: statuses("containerd://debug")},
			[]string{"init", "main", "debug"}},
		{"a container not started yet has no ID", corev1.PodStatus{ContainerStatuses: statuses("")}, nil},
		{"an ID without scheme is used as is", corev1.PodStatus{ContainerStatuses: statuses("ddd")}, []string{"ddd"}},
		{"a pod without statuses", corev1.PodStatus{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := indexByContainerID(&corev1.Pod{Status: tt.status})
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("indexByContainerID() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestLookupPod(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: uid},
		Status: corev1.PodStatus{
			InitContainerStatuses: []corev1.ContainerStatus{{Name: "setup", ContainerID: "cri-o://" + nodeID}},
			ContainerStatuses:     []corev1.ContainerStatus{{Name: "app", ContainerID: "containerd://" + cid}},
		},
	}
	// Through slimPod, as the informer stores it.
	slim, err := slimPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{containerIDIndex: indexByContainerID, podUIDIndex: indexByPodUID})
	if err := idx.Add(slim); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                  string
		containerID, podUID   string
		wantOK                bool
		wantContainer, wantRT string
	}{
		{"a regular container by ID", cid, "", true, "app", "containerd"},
		{"an init container by ID", nodeID, "", true, "setup", "cri-o"},
		{"an unknown container of a known pod UID gives the pod only", "1111111111111111111111111111111111111111111111111111111111111111", uid, true, "", ""},
		{"an unknown container and pod", "1111111111111111111111111111111111111111111111111111111111111111", "00000000-0000-0000-0000-000000000000", false, "", ""},
		{"nothing to look up", "", "", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := lookupPod(idx, tt.containerID, tt.podUID)
			if ok != tt.wantOK || got.container != tt.wantContainer || got.runtime != tt.wantRT {
				t.Fatalf("lookupPod() = %+v, %v; want container %q runtime %q, %v", got, ok, tt.wantContainer, tt.wantRT, tt.wantOK)
			}
			if ok && (got.pod.Name != "web" || got.pod.Namespace != "ns" || got.pod.UID != uid) {
				t.Errorf("lookupPod() pod = %s/%s %s, want ns/web %s", got.pod.Namespace, got.pod.Name, got.pod.UID, uid)
			}
		})
	}
}

func TestSlimPodPassesTombstonesThrough(t *testing.T) {
	tomb := cache.DeletedFinalStateUnknown{Key: "ns/web"}
	got, err := slimPod(tomb)
	if err != nil || got != tomb {
		t.Errorf("slimPod(tombstone) = %v, %v; want it unchanged", got, err)
	}
}

// The informer's slim pod keeps what the node thresholds read (selection by
// internal/podtarget.Select, threshold.Evaluate's requests and limits) and drops the rest.
func TestSlimPodKeepsWhatThresholdsRead(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	now := metav1.Now()
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resourceMust("100m")}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: uid, CreationTimestamp: now, DeletionTimestamp: &now,
			Labels:        map[string]string{"app": "web"},
			Annotations:   map[string]string{"profiling.io/enabled": "true", "profiling.io/port": "8080", "kubectl.kubernetes.io/last-applied-configuration": "{…}"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: corev1.PodSpec{
			NodeName:       "node-1",
			Containers:     []corev1.Container{{Name: "app", Image: "img", Env: []corev1.EnvVar{{Name: "A", Value: "b"}}, Resources: res, Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}},
			InitContainers: []corev1.Container{{Name: "proxy", RestartPolicy: &always, Resources: res}},
			Volumes:        []corev1.Volume{{Name: "v"}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionTrue, Message: "ok"}}},
	}
	obj, err := slimPod(pod)
	if err != nil {
		t.Fatal(err)
	}
	s := obj.(*corev1.Pod)
	if s.Labels["app"] != "web" || len(s.Annotations) != 2 || s.Annotations["profiling.io/port"] != "8080" ||
		s.DeletionTimestamp == nil || !s.CreationTimestamp.Equal(&now) || s.ManagedFields != nil {
		t.Errorf("metadata %+v: want labels, the profiling.io annotations only, timestamps, no managed fields", s.ObjectMeta)
	}
	if len(s.Spec.Containers) != 1 || s.Spec.Containers[0].Resources.Requests.Cpu().String() != "100m" || s.Spec.Containers[0].Env != nil ||
		s.Spec.Containers[0].Image != "img" || len(s.Spec.Containers[0].Ports) != 1 || s.Spec.Volumes != nil {
		t.Errorf("containers %+v, volumes %v: want name, image, ports and resources only", s.Spec.Containers, s.Spec.Volumes)
	}
	if len(s.Spec.InitContainers) != 1 || s.Spec.InitContainers[0].RestartPolicy == nil {
		t.Errorf("init containers %+v: want the native sidecar with its restart policy", s.Spec.InitContainers)
	}
	if s.Status.Phase != corev1.PodRunning || s.Status.PodIP != "10.0.0.1" || len(s.Status.Conditions) != 1 ||
		s.Status.Conditions[0] != (corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}) {
		t.Errorf("status %+v: want phase, pod IP and the Ready condition", s.Status)
	}
}

func resourceMust(s string) resource.Quantity { return resource.MustParse(s) }

// The slim pod keeps what the service identity reads: the OpenTelemetry annotations,
// the app.kubernetes.io labels, the owner and the container's image.
func TestSlimPodKeepsTheServiceIdentity(t *testing.T) {
	yes := true
	tests := []struct {
		name string
		pod  *corev1.Pod
	}{
		{"by OpenTelemetry annotations", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-1",
			Annotations: map[string]string{serviceid.AnnotationOTelName: "checkout", serviceid.AnnotationOTelNamespace: "pay",
				serviceid.AnnotationOTelVersion: "9", "other/annotation": "x"}}}},
		{"by a Deployment's ReplicaSet and the image tag", &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cart-5c7b-x2x9z", Labels: map[string]string{"pod-template-hash": "5c7b"},
				OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "cart-5c7b", Controller: &yes}}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "reg/cart:1.4"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := slimPod(tt.pod)
			if err != nil {
				t.Fatal(err)
			}
			want := serviceid.ForPod(tt.pod, "app")
			if got := serviceid.ForPod(obj.(*corev1.Pod), "app"); got != want {
				t.Errorf("identity of the slim pod = %+v, want %+v", got, want)
			}
		})
	}
}
