package failover

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/controller"
	kprofoperator "github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/testenv"
)

// TestFailoverDeliversTheDeadLeadersSpool kills the leader with SIGKILL while S3 (MinIO)
// is down and its captures wait in its spool. The standby takes over; the dead replica
// comes back with the same spool directory, as kubelet restarts a killed container in
// the same pod (an emptyDir outlives its containers; a PVC outlives the pod), and as a
// standby it uploads what it left. Every profile captured reaches the bucket once the
// store is back, no spool keeps anything, and status.totalUploads equals the objects.
func TestFailoverDeliversTheDeadLeadersSpool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	cl, err := client.New(env.Config, client.Options{Scheme: kprofoperator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := writeKubeconfig(t, env.Config)
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, "profiles")
	m.Stop(t) // down while the first leader captures

	const ns = "spooled"
	for _, name := range []string{operatorNamespace, ns} {
		if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "minio"},
		Data:       map[string][]byte{controller.SecretKeyAccessKeyID: []byte(m.AccessKey), controller.SecretKeySecretAccessKey: []byte(m.SecretKey)},
	}); err != nil {
		t.Fatal(err)
	}

	a := newOperator(t, "a", kubeconfig)
	a.start(t)
	holderA := waitLeader(t, cl, a, time.Minute)
	b := newOperator(t, "b", kubeconfig)
	b.start(t)

	var pods []*corev1.Pod
	for i, ip := range []string{"127.0.0.71", "127.0.0.72"} {
		port := testenv.StartSampleApp(t, net.JoinHostPort(ip, "0"))
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("api-%d", i), Annotations: map[string]string{
				profilingv1alpha1.AnnotationEnabled: "true", profilingv1alpha1.AnnotationPort: strconv.Itoa(port)}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "sample-app:dev"}}},
		}
		if err := cl.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		if err := cl.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
		pods = append(pods, pod)
	}
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "to-s3"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			OnDemand:     &profilingv1alpha1.OnDemand{Enabled: true, IntervalSeconds: int32(interval / time.Second)},
			ProfileTypes: []profilingv1alpha1.ProfileType{"heap", "goroutine"},
			S3Config: &profilingv1alpha1.S3Config{Bucket: "profiles", Endpoint: m.Endpoint, Region: m.Region,
				CredentialsSecretRef: &profilingv1alpha1.SecretReference{Name: "minio"}},
		},
	}
	if err := cl.Create(ctx, pc); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*interval, func() (bool, string) {
		if n := len(a.spooled(t)); n < 2*len(pods) {
			return false, fmt.Sprintf("%d profiles in the leader's spool", n)
		}
		return true, ""
	})

	a.kill(t)
	left := a.spooled(t) // what the dead leader acknowledged: on its disk
	testenv.Eventually(t, 2*leaseDuration+10*time.Second, func() (bool, string) {
		h, err := leaseHolder(ctx, cl)
		if err != nil || h == "" || h == holderA {
			return false, fmt.Sprintf("lease holder %q (%v)", h, err)
		}
		if leads, err := b.leads(); err != nil || !leads {
			return false, fmt.Sprintf("replica b leads: %v (%v)", leads, err)
		}
		return true, ""
	})
	a.start(t) // the killed container restarts in its pod, with its volumes
	if leads, err := a.leads(); err != nil || leads {
		t.Fatalf("the restarted replica leads (%v): %v", leads, err)
	}
	t.Logf("the dead leader left %d profiles in its spool; the store comes back", len(left))
	m.Start(t)

	t.Run("the restarted replica uploads its spool as a standby", func(t *testing.T) {
		testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
			objects := listObjects(t, m)
			for _, k := range left {
				if !slices.Contains(objects, k) {
					return false, fmt.Sprintf("%s not in the bucket (%d objects)", k, len(objects))
				}
			}
			if n := len(a.spooled(t)); n != 0 {
				return false, fmt.Sprintf("%d profiles still in the restarted replica's spool", n)
			}
			// The spool removes an entry's files before it counts the upload.
			mt, err := a.metrics()
			if err != nil {
				return false, err.Error()
			}
			if n := sum(mt, "kprof_spool_uploads_total", `result="success"`); n < float64(len(left)) {
				return false, fmt.Sprintf("the restarted replica uploaded %v profiles, its spool held %d", n, len(left))
			}
			return true, ""
		})
		mt, err := a.metrics()
		if err != nil {
			t.Fatal(err)
		}
		if n := sum(mt, "kprof_captures_total"); n != 0 {
			t.Errorf("the standby captured %v profiles", n)
		}
	})

	t.Run("status counts every object in the bucket once", func(t *testing.T) {
		// No more captures: the pods go away (Terminating without a kubelet, which the
		// operator treats as gone).
		for _, pod := range pods {
			if err := cl.Delete(ctx, pod); err != nil {
				t.Fatal(err)
			}
		}
		testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
			var got profilingv1alpha1.ProfilingConfig
			if err := cl.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
				return false, err.Error()
			}
			if got.Status.ActivePods != 0 {
				return false, fmt.Sprintf("activePods = %d", got.Status.ActivePods)
			}
			if n := len(b.spooled(t)) + len(a.spooled(t)); n != 0 {
				return false, fmt.Sprintf("%d profiles still spooled", n)
			}
			objects := listObjects(t, m)
			if got.Status.TotalUploads != int64(len(objects)) {
				return false, fmt.Sprintf("totalUploads = %d, %d objects in the bucket", got.Status.TotalUploads, len(objects))
			}
			if got.Status.TotalProfiles > int64(len(objects)) {
				return false, fmt.Sprintf("totalProfiles = %d, more than the %d objects", got.Status.TotalProfiles, len(objects))
			}
			t.Logf("%d objects (%d from the dead leader's spool), totalUploads %d, totalProfiles %d",
				len(objects), len(left), got.Status.TotalUploads, got.Status.TotalProfiles)
			return true, ""
		})
	})
}

// listObjects lists the profiles in the bucket (not the index markers beside them).
func listObjects(t *testing.T, m *testenv.MinIO) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(m.Client(), &s3.ListObjectsV2Input{Bucket: aws.String("profiles")})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list s3://profiles: %v", err)
		}
		for _, o := range out.Contents {
			if k := aws.ToString(o.Key); !storage.IsMarkerKey(k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
}
