package operator_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/controller"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/testenv"
)

// createCredentialsSecret stores S3 credentials in the operator's namespace.
func createCredentialsSecret(t *testing.T, name, accessKey, secretKey string) {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: secretsNamespace, Name: name},
		Data: map[string][]byte{
			controller.SecretKeyAccessKeyID:     []byte(accessKey),
			controller.SecretKeySecretAccessKey: []byte(secretKey),
		},
	}
	if err := k8sClient.Create(context.Background(), s); err != nil {
		t.Fatalf("create Secret %s: %v", name, err)
	}
}

func listObjects(t *testing.T, m *testenv.MinIO, bucket string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := m.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list s3://%s: %v", bucket, err)
	}
	keys := make([]string, 0, len(out.Contents))
	for _, o := range out.Contents {
		if storage.IsMarkerKey(aws.ToString(o.Key)) {
			continue // the empty index marker written next to each profile
		}
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

func s3Config(m *testenv.MinIO, bucket, prefix, secret string) *profilingv1alpha1.S3Config {
	return &profilingv1alpha1.S3Config{
		Bucket: bucket, Endpoint: m.Endpoint, Region: m.Region, Prefix: prefix,
		CredentialsSecretRef: &profilingv1alpha1.SecretReference{Name: secret},
	}
}

func getConfig(t *testing.T, key client.ObjectKey) *profilingv1alpha1.ProfilingConfig {
	t.Helper()
	var pc profilingv1alpha1.ProfilingConfig
	if err := k8sClient.Get(context.Background(), key, &pc); err != nil {
		t.Fatalf("get ProfilingConfig %s: %v", key, err)
	}
	return &pc
}

func TestProfilesReachS3WithTheirMetadata(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, "profiles")
	createCredentialsSecret(t, "minio-good", m.AccessKey, m.SecretKey)
	const ns = "team-s3"
	createNamespace(t, ns)
	port := startSampleApp(t, "127.0.0.51")
	createPod(t, ns, podSpec{name: "api-0", labels: map[string]string{"app.kubernetes.io/name": "api"}, annotated: true, ip: "127.0.0.51", port: port, ready: true})
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "to-s3"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			OnDemand:     onDemand(30),
			ProfileTypes: []profilingv1alpha1.ProfileType{"heap", "goroutine"},
			S3Config:     s3Config(m, "profiles", "prod", "minio-good"),
		},
	}
	if err := k8sClient.Create(ctx, pc); err != nil {
		t.Fatalf("create ProfilingConfig: %v", err)
	}

	var keys []string
	eventually(t, 60*time.Second, "two objects in s3://profiles", func() error {
		keys = listObjects(t, m, "profiles")
		if len(keys) < 2 {
			return fmt.Errorf("%d objects", len(keys))
		}
		return nil
	})
	for _, key := range keys {
		t.Run("object "+key+" is where the template says, with metadata, and opens in pprof", func(t *testing.T) {
			if !strings.HasPrefix(key, "prod/team-s3/api/") || !strings.Contains(key, "_api-0_") || !strings.HasSuffix(key, ".pb.gz") {
				t.Errorf("key %q does not follow {prefix}/{namespace}/{service}/{date}/{timestamp}_{pod}_{type}.pb.gz", key)
			}
			head, err := m.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("profiles"), Key: aws.String(key)})
			if err != nil {
				t.Fatalf("head %s: %v", key, err)
			}
			md := head.Metadata
			if md["namespace"] != ns || md["pod"] != "api-0" || md["service"] != "api" || md["node"] != "node-1" || md["reason"] != "schedule" || md["config"] != ns+"/to-s3" {
				t.Errorf("metadata = %v", md)
			}
			if typ := md["type"]; typ == "" || !strings.HasSuffix(key, "_"+typ+".pb.gz") {
				t.Errorf("type metadata %q does not match key %s", typ, key)
			}
			at, err := time.Parse(time.RFC3339Nano, md["captured-at"])
			if err != nil || !strings.Contains(key, "/"+at.UTC().Format("2006-01-02")+"/") {
				t.Errorf("captured-at metadata %q (%v) does not match the date in key %s", md["captured-at"], err, key)
			}
			obj, err := m.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("profiles"), Key: aws.String(key)})
			if err != nil {
				t.Fatalf("get %s: %v", key, err)
			}
			data, err := io.ReadAll(io.LimitReader(obj.Body, 64<<20))
			obj.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(t.TempDir(), "p.pb.gz")
			if err := os.WriteFile(f, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("go", "tool", "pprof", "-raw", f).CombinedOutput(); err != nil {
				t.Errorf("go tool pprof -raw on the downloaded object: %v\n%.400s", err, out)
			}
		})
	}
	t.Run("status counts confirmed uploads and the store is ready", func(t *testing.T) {
		eventually(t, 30*time.Second, "totalUploads == objects", func() error {
			got := getConfig(t, client.ObjectKeyFromObject(pc))
			n := len(listObjects(t, m, "profiles"))
			if got.Status.TotalUploads != int64(n) || got.Status.TotalProfiles != int64(n) {
				return fmt.Errorf("totalUploads = %d, totalProfiles = %d, objects = %d", got.Status.TotalUploads, got.Status.TotalProfiles, n)
			}
			c := meta.FindStatusCondition(got.Status.Conditions, profilingv1alpha1.ConditionStorageReady)
			if c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("StorageReady = %+v", c)
			}
			return nil
		})
	})
}

func TestStoreProblemsAreNamedAndSpooledProfilesStay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, "exists")
	createCredentialsSecret(t, "minio-wrong", m.AccessKey, "not-the-secret-key")
	createCredentialsSecret(t, "minio-right", m.AccessKey, m.SecretKey)
	const ns = "team-s3-broken"
	createNamespace(t, ns)
	port := startSampleApp(t, "127.0.0.52")
	createPod(t, ns, podSpec{name: "api-0", annotated: true, ip: "127.0.0.52", port: port, ready: true})

	cases := []struct {
		name, config, bucket, secret, reason string
	}{
		{"wrong credentials", "wrong-creds", "exists", "minio-wrong", "InvalidCredentials"},
		{"a missing bucket", "missing-bucket", "missing", "minio-right", "NoSuchBucket"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" set StorageReady=False with reason "+tc.reason+" and keep the profiles in the spool", func(t *testing.T) {
			pc := &profilingv1alpha1.ProfilingConfig{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tc.config},
				Spec: profilingv1alpha1.ProfilingConfigSpec{
					OnDemand:     onDemand(30),
					ProfileTypes: []profilingv1alpha1.ProfileType{"heap"},
					S3Config:     s3Config(m, tc.bucket, "", tc.secret),
				},
			}
			if err := k8sClient.Create(ctx, pc); err != nil {
				t.Fatalf("create ProfilingConfig: %v", err)
			}
			eventually(t, 60*time.Second, "StorageReady False "+tc.reason+" after a capture", func() error {
				got := getConfig(t, client.ObjectKeyFromObject(pc))
				c := meta.FindStatusCondition(got.Status.Conditions, profilingv1alpha1.ConditionStorageReady)
				if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tc.reason {
					return fmt.Errorf("StorageReady = %+v", c)
				}
				if got.Status.TotalProfiles < 1 {
					return fmt.Errorf("no profile captured yet")
				}
				return nil
			})
			eventually(t, 20*time.Second, "StorageUnavailable event naming "+tc.reason, func() error {
				for _, e := range listEvents(ctx, ns, "ProfilingConfig", tc.config, "StorageUnavailable") {
					if strings.Contains(e.Note, tc.reason) {
						return nil
					}
				}
				return fmt.Errorf("no StorageUnavailable event naming %s", tc.reason)
			})
			got := getConfig(t, client.ObjectKeyFromObject(pc))
			if got.Status.TotalUploads != 0 {
				t.Errorf("totalUploads = %d with a broken store", got.Status.TotalUploads)
			}
			store := "s3://" + tc.bucket
			if v := gaugeValue(t, "kprof_spool_entries", store); v < 1 {
				t.Errorf("kprof_spool_entries for %s = %v: captured profiles must wait in the spool", store, v)
			}
			if v := counterValueMatching(t, "kprof_spool_evictions_total", store); v != 0 {
				t.Errorf("kprof_spool_evictions_total for %s = %v", store, v)
			}
		})
	}
}

// gaugeValue sums gauge series whose store label starts with storePrefix.
func gaugeValue(t *testing.T, name, storePrefix string) float64 {
	t.Helper()
	return sumMatching(t, name, storePrefix, false)
}

func counterValueMatching(t *testing.T, name, storePrefix string) float64 {
	t.Helper()
	return sumMatching(t, name, storePrefix, true)
}

func sumMatching(t *testing.T, name, storePrefix string, counter bool) float64 {
	t.Helper()
	mfs, err := registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "store" && strings.HasPrefix(l.GetValue(), storePrefix) {
					if counter {
						sum += m.GetCounter().GetValue()
					} else {
						sum += m.GetGauge().GetValue()
					}
				}
			}
		}
	}
	return sum
}
