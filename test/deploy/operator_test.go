package deploy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/testenv"
)

// leaseName is the operator's leader election Lease (cmd/kprof/operator.go).
const leaseName = "kprof-operator.profiling.io"

// asServiceAccount returns cfg impersonating the ServiceAccount user, as its token would
// authenticate, with every request the API server refuses (403) recorded in denials.
func asServiceAccount(cfg *rest.Config, user string, denials *denials) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: saGroups}
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return denials.wrap(rt) })
	return c
}

// denials records the requests the API server answered 403 Forbidden.
type denials struct {
	mu   sync.Mutex
	reqs []string
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (d *denials) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		if err == nil && resp.StatusCode == http.StatusForbidden {
			d.mu.Lock()
			d.reqs = append(d.reqs, r.Method+" "+r.URL.Path)
			d.mu.Unlock()
		}
		return resp, err
	})
}

func (d *denials) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.reqs)
}

// syncBuffer is a log sink safe for the operator's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// operatorRun is an operator started in-process like `kprof operator --leader-elect`.
type operatorRun struct {
	profilesDir string
	denials     *denials
	log         *syncBuffer
}

// startOperator runs the operator as the kprof-operator ServiceAccount until t ends.
func startOperator(t *testing.T, adminCfg *rest.Config, portForward bool) *operatorRun {
	t.Helper()
	return startOperatorWith(t, adminCfg, func(o *operator.Options) { o.PortForward = portForward })
}

// startOperatorWith is startOperator with options changed by mod.
func startOperatorWith(t *testing.T, adminCfg *rest.Config, mod func(*operator.Options)) *operatorRun {
	t.Helper()
	run := &operatorRun{profilesDir: filepath.Join(t.TempDir(), "profiles"), denials: &denials{}, log: &syncBuffer{}}
	cfg := asServiceAccount(adminCfg, operatorSA, run.denials)
	grace := 7 * time.Second
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        operator.NewScheme(),
		Logger:                        zap.New(zap.WriteTo(run.log), zap.UseDevMode(true)),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              leaseName,
		LeaderElectionNamespace:       systemNamespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &grace,
		Cache:                         cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		// One operator per test, each with its own manager, in this one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	opts := operator.Options{
		ProfilesDir:      run.profilesDir,
		SpoolDir:         filepath.Join(t.TempDir(), "spool"),
		SecretsNamespace: systemNamespace,
		RequestTimeout:   5 * time.Second,
		ShutdownGrace:    2 * time.Second,
		Registerer:       prometheus.NewRegistry(),
		RESTConfig:       cfg,
		MetricsTimeout:   3 * time.Second,
	}
	mod(&opts)
	if err := operator.Setup(mgr, opts); err != nil {
		t.Fatalf("operator setup: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator stopped with error: %v", err)
		}
		if t.Failed() {
			t.Logf("operator log:\n%s", tailString(run.log.String(), 16<<10))
		}
	})
	return run
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// startSampleApp runs the real sample app on ip (a free port) until t ends.
func startSampleApp(t *testing.T, ip string) int {
	t.Helper()
	return testenv.StartSampleApp(t, net.JoinHostPort(ip, "0"), "--background-load")
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %s: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// profilingConfig selects the pods labelled app=sample-app of ns, every 30s (the minimum),
// heap and a 1s CPU profile, into localStorage path ns; with thresholds, so the operator also
// reads metrics.k8s.io.
func profilingConfig(ns string) *profilingv1alpha1.ProfilingConfig {
	return &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sample-app"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			Selector:                  profilingv1alpha1.ProfilingSelector{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sample-app"}}},
			OnDemand:                  &profilingv1alpha1.OnDemand{Enabled: true, IntervalSeconds: 30},
			ProfileTypes:              []profilingv1alpha1.ProfileType{"heap", "cpu"},
			CPUProfileDurationSeconds: 1,
			Thresholds:                &profilingv1alpha1.Thresholds{CPUThresholdPercent: 90, CheckIntervalSeconds: 10, CooldownSeconds: 60},
			LocalStorage:              &profilingv1alpha1.LocalStorage{Path: ns},
		},
	}
}

// expectCaptured waits for heap and CPU profiles of the pod, valid pprof, with the status,
// Events and Lease the operator writes under its own identity, and no 403 on the way.
func expectCaptured(t *testing.T, c client.Client, run *operatorRun, pc *profilingv1alpha1.ProfilingConfig, pod string) {
	t.Helper()
	ctx := t.Context()
	dir := filepath.Join(run.profilesDir, pc.Namespace)
	t.Run("heap and CPU profiles are stored and parse as pprof", func(t *testing.T) {
		eventually(t, 75*time.Second, "heap and cpu profiles stored", func() error {
			var types []string
			err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pb.gz") {
					return nil
				}
				f, err := os.Open(path)
				if err != nil {
					return err
				}
				defer f.Close()
				if _, err := profile.Parse(f); err != nil {
					return fmt.Errorf("%s is not pprof: %w", path, err)
				}
				types = append(types, strings.TrimSuffix(path[strings.LastIndexByte(path, '_')+1:], ".pb.gz"))
				return nil
			})
			if err != nil {
				return err
			}
			if !slices.Contains(types, "heap") || !slices.Contains(types, "cpu") {
				return fmt.Errorf("stored types %v", types)
			}
			return nil
		})
	})
	t.Run("status counts the profiles and says Ready", func(t *testing.T) {
		eventually(t, 20*time.Second, "status updated", func() error {
			var got profilingv1alpha1.ProfilingConfig
			if err := c.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
				return err
			}
			if got.Status.TotalProfiles < 2 || got.Status.ActivePods != 1 {
				return fmt.Errorf("totalProfiles %d, activePods %d", got.Status.TotalProfiles, got.Status.ActivePods)
			}
			if cond := meta.FindStatusCondition(got.Status.Conditions, profilingv1alpha1.ConditionReady); cond == nil || cond.Status != metav1.ConditionTrue {
				return fmt.Errorf("Ready = %+v", cond)
			}
			return nil
		})
	})
	t.Run("the config's ProfileCaptured summary Event counts the pod's captures", func(t *testing.T) {
		// One summary per config and reason per --event-interval (1m by default).
		eventually(t, 90*time.Second, "ProfileCaptured Event", func() error {
			var evs eventsv1.EventList
			if err := c.List(ctx, &evs, client.InNamespace(pc.Namespace)); err != nil {
				return err
			}
			for _, e := range evs.Items {
				if e.Reason == "ProfileCaptured" && e.Regarding.Kind == "ProfilingConfig" && e.Regarding.Name == pc.Name &&
					strings.Contains(e.Note, "from 1 pods") {
					return nil
				}
			}
			return fmt.Errorf("%d Events, no ProfileCaptured summary on ProfilingConfig %s", len(evs.Items), pc.Name)
		})
	})
	t.Run("the operator holds its Lease in kprof-system", func(t *testing.T) {
		var lease coordinationv1.Lease
		if err := c.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: leaseName}, &lease); err != nil {
			t.Fatal(err)
		}
		if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			t.Errorf("Lease has no holder: %+v", lease.Spec)
		}
	})
	t.Run("no request of the operator was forbidden", func(t *testing.T) {
		if d := run.denials.list(); len(d) > 0 {
			t.Errorf("the API server refused (403) %d requests of %s: %q", len(d), operatorSA, d)
		}
		if log := run.log.String(); strings.Contains(strings.ToLower(log), "forbidden") {
			t.Errorf("the operator logged a forbidden request:\n%s", grepLines(log, "forbidden"))
		}
	})
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(strings.ToLower(l), substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestOperatorCapturesUnderItsServiceAccount(t *testing.T) {
	p := cluster(t)
	ctx := t.Context()
	const ns, ip = "deploy-e2e", "127.0.0.61"
	createNamespace(t, p.c, ns)
	port := startSampleApp(t, ip)

	// The pod as a kubelet would report it (envtest runs none).
	ann := map[string]string{profilingv1alpha1.AnnotationEnabled: "true", profilingv1alpha1.AnnotationPort: strconv.Itoa(port)}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sample-app-0", Labels: map[string]string{"app": "sample-app"}, Annotations: ann},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app", Image: "ghcr.io/kprof/sample-app:latest",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}},
	}
	if err := p.c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}},
		PodIP:      ip, PodIPs: []corev1.PodIP{{IP: ip}},
	}
	if err := p.c.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pc := profilingConfig(ns)
	if err := p.c.Create(ctx, pc); err != nil {
		t.Fatal(err)
	}

	run := startOperator(t, p.cfg, false)
	expectCaptured(t, p.c, run, pc, pod.Name)
	t.Run("without metrics-server, thresholds report MetricsUnavailable (not a permission error)", func(t *testing.T) {
		eventually(t, 30*time.Second, "MetricsAvailable condition", func() error {
			var got profilingv1alpha1.ProfilingConfig
			if err := p.c.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(got.Status.Conditions, profilingv1alpha1.ConditionMetricsAvailable)
			if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "MetricsUnavailable" {
				return fmt.Errorf("MetricsAvailable = %+v", cond)
			}
			if strings.Contains(strings.ToLower(cond.Message), "forbidden") {
				return fmt.Errorf("MetricsAvailable says forbidden: %s", cond.Message)
			}
			return nil
		})
	})
}

// The 403 detector of the end-to-end tests is real: a request outside the operator's RBAC
// is seen.
func TestARequestOutsideTheRBACIsSeenAsForbidden(t *testing.T) {
	p := cluster(t)
	d := &denials{}
	c, err := client.New(asServiceAccount(p.cfg, operatorSA, d), client.Options{Scheme: scheme()})
	if err != nil {
		t.Fatal(err)
	}
	var secrets corev1.SecretList
	if err := c.List(t.Context(), &secrets, client.InNamespace(systemNamespace)); err == nil {
		t.Fatal("the operator's identity listed Secrets")
	}
	if got := d.list(); len(got) != 1 || !strings.Contains(got[0], "/secrets") {
		t.Errorf("denials recorded = %q, want the Secret list", got)
	}
}
