package serviceid

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func owned(kind, name string) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{Kind: kind, Name: name, Controller: &yes}}
}

func TestForPod(t *testing.T) {
	notController := false
	tests := []struct {
		name      string
		pod       *corev1.Pod
		container string
		want      Identity
	}{
		{
			name: "the OpenTelemetry annotations win over everything",
			pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-7d9f-abcde",
				Annotations: map[string]string{AnnotationOTelName: "checkout", AnnotationService: "kprof-name",
					AnnotationOTelNamespace: "payments", AnnotationOTelVersion: "2.0"},
				Labels: map[string]string{LabelAppName: "web", LabelAppVersion: "1.0"}}},
			container: "app",
			want:      Identity{Name: "checkout", Namespace: "payments", InstanceID: "shop.web-7d9f-abcde.app", Version: "2.0"},
		},
		{
			name: "profiling.io/service comes before the app.kubernetes.io labels",
			pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0",
				Annotations: map[string]string{AnnotationService: "frontend"},
				Labels:      map[string]string{LabelAppName: "web", LabelAppVersion: "1.0"}}},
			container: "app",
			want:      Identity{Name: "frontend", Namespace: "shop", InstanceID: "shop.web-0.app", Version: "1.0"},
		},
		{
			name: "app.kubernetes.io/name comes before the owner",
			pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0",
				Labels: map[string]string{LabelAppName: "web"}, OwnerReferences: owned("StatefulSet", "db")}},
			want: Identity{Name: "web", Namespace: "shop", InstanceID: "shop.web-0"},
		},
		{
			name: "a Deployment's ReplicaSet gives the Deployment, the version the image tag",
			pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart-5c7b9d8f6-x2x9z",
				Labels: map[string]string{LabelPodTemplateHash: "5c7b9d8f6"}, OwnerReferences: owned("ReplicaSet", "cart-5c7b9d8f6")},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "sidecar", Image: "envoy:1.30"}, {Name: "app", Image: "registry:5000/shop/cart:3.1.4@sha256:abcd"}}}},
			container: "app",
			want:      Identity{Name: "cart", Namespace: "shop", InstanceID: "shop.cart-5c7b9d8f6-x2x9z.app", Version: "3.1.4"},
		},
		{
			name: "a bare ReplicaSet keeps its name",
			pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "rs-abc",
				OwnerReferences: owned("ReplicaSet", "my-rs")}},
			want: Identity{Name: "my-rs", Namespace: "ns", InstanceID: "ns.rs-abc"},
		},
		{
			name: "a CronJob's Job gives the CronJob",
			pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "batch", Name: "report-29012345-k8x7q",
				OwnerReferences: owned("Job", "report-29012345")},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "run", Image: "report"}}}},
			container: "run",
			want:      Identity{Name: "report", Namespace: "batch", InstanceID: "batch.report-29012345-k8x7q.run"},
		},
		{
			name: "a Job with a short number keeps its name",
			pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "batch", Name: "migrate-2-abcde",
				OwnerReferences: owned("Job", "migrate-2")}},
			want: Identity{Name: "migrate-2", Namespace: "batch", InstanceID: "batch.migrate-2-abcde"},
		},
		{
			name: "a DaemonSet gives its name, the only container's image its version",
			pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "agent-x7",
				OwnerReferences: owned("DaemonSet", "agent")},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "ghcr.io/kprof/kprof:v0.3.0"}}}},
			want: Identity{Name: "agent", Namespace: "kube-system", InstanceID: "kube-system.agent-x7", Version: "v0.3.0"},
		},
		{
			name: "an owner that is not the controller is ignored: the pod name",
			pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "solo",
				OwnerReferences: []metav1.OwnerReference{{Kind: "StatefulSet", Name: "db", Controller: &notController}}}},
			want: Identity{Name: "solo", Namespace: "ns", InstanceID: "ns.solo"},
		},
		{
			name: "blank annotations are skipped",
			pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p",
				Annotations: map[string]string{AnnotationOTelName: "  ", AnnotationService: ""}}},
			want: Identity{Name: "p", Namespace: "ns", InstanceID: "ns.p"},
		},
		{
			name:      "without a pod name the container names the service",
			pod:       &corev1.Pod{},
			container: "worker",
			want:      Identity{Name: "worker"},
		},
		{
			name:      "without a pod the container names the service",
			container: "worker",
			want:      Identity{Name: "worker"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ForPod(tt.pod, tt.container); got != tt.want {
				t.Errorf("ForPod = %+v, want %+v", got, tt.want)
			}
			if got := Name(tt.pod, tt.container); got != tt.want.Name {
				t.Errorf("Name = %q, want %q", got, tt.want.Name)
			}
		})
	}
}

func TestForExecutable(t *testing.T) {
	tests := []struct {
		name, exe, comm, want string
	}{
		{"the full file name of the executable, not the 15-character comm",
			"/usr/local/bin/kprof-fidelity-workload", "kprof-fidelity-", "kprof-fidelity-workload"},
		{"a replaced executable loses its (deleted) mark", "/opt/app/server (deleted)", "server", "server"},
		{"a kernel thread without an executable is named by its comm", "", "kworker/0:1", "kworker/0:1"},
		{"a process of which nothing is known has a name that says so", "", "", UnknownName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ForExecutable(tt.exe, tt.comm); got != (Identity{Name: tt.want}) {
				t.Errorf("ForExecutable(%q, %q) = %+v, want name %q", tt.exe, tt.comm, got, tt.want)
			}
		})
	}
}

func TestImageTag(t *testing.T) {
	for image, want := range map[string]string{
		"nginx":                           "",
		"nginx:1.27":                      "1.27",
		"registry:5000/team/app":          "",
		"registry:5000/team/app:v2":       "v2",
		"app@sha256:0123":                 "",
		"ghcr.io/a/b:1.0@sha256:0123abcd": "1.0",
	} {
		if got := imageTag(image); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestFromLabels(t *testing.T) {
	pod := Identity{Name: "cart", Namespace: "shop", InstanceID: "shop.cart-1.app", Version: "3"}
	labels := map[string]string{"exe": "/app/cart-server", "comm": "cart-server"}
	pod.PutLabels(labels)
	tests := []struct {
		name   string
		labels map[string]string
		want   Identity
	}{
		{"a pod's sample has its pod's identity", labels, pod},
		{"a host process is named by its executable", map[string]string{"exe": "/usr/bin/postgres-exporter", "comm": "postgres-export"},
			Identity{Name: "postgres-exporter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FromLabels(tt.labels); got != tt.want {
				t.Errorf("FromLabels(%v) = %+v, want %+v", tt.labels, got, tt.want)
			}
		})
	}
}
