package operator_test

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/testenv"
)

// uiRuns numbers the namespaces of TestTheUIListsWhatTheOperatorCaptured, so that
// -count=N runs it N times in one control plane.
var uiRuns atomic.Int32

// TestTheUIListsWhatTheOperatorCaptured: the operator's own web UI (UIOptions) lists the
// profiles it stored below its profiles directory, names the pod whose files it shows,
// and opens a profile's flame graph.
func TestTheUIListsWhatTheOperatorCaptured(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	ns := fmt.Sprintf("ui-%d", uiRuns.Add(1))
	createNamespace(t, ns)
	const ip = "127.0.0.91"
	port := startSampleApp(t, ip)
	pod := "checkout-" + ns
	labels := map[string]string{"app": "checkout"}
	createPod(t, ns, podSpec{name: pod, labels: labels, annotated: true, ip: ip, port: port, ready: true})
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "checkout"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			Selector:     profilingv1alpha1.ProfilingSelector{LabelSelector: &metav1.LabelSelector{MatchLabels: labels}},
			OnDemand:     onDemand(30),
			ProfileTypes: []profilingv1alpha1.ProfileType{"goroutine"},
			LocalStorage: &profilingv1alpha1.LocalStorage{},
		},
	}
	if err := k8sClient.Create(ctx, pc); err != nil {
		t.Fatalf("create ProfilingConfig: %v", err)
	}

	hc := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) (int, string, error) {
		resp, err := hc.Get(uiURL + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		return resp.StatusCode, string(b), err
	}
	row := regexp.MustCompile(`(?s)<td class="pod">` + regexp.QuoteMeta(pod) + `</td><td class="type">goroutine</td>.*?href="(/profile/[^"]+/-/flamegraph)"`)
	var list, link string
	testenv.Eventually(t, 90*time.Second, func() (bool, string) {
		code, body, err := get("/?namespace=" + ns)
		if err != nil {
			return false, err.Error()
		}
		m := row.FindStringSubmatch(body)
		if code != http.StatusOK || m == nil {
			return false, fmt.Sprintf("GET /?namespace=%s: %d, no goroutine profile of pod %s with a link yet:\n%s", ns, code, pod, body)
		}
		list, link = body, html.UnescapeString(m[1])
		return true, ""
	})

	t.Run("the list says whose directory it shows: this pod's, the replica that captures", func(t *testing.T) {
		host, _ := os.Hostname()
		want := profilesDir + " in pod " + host + " (the replica that captures)"
		if !strings.Contains(list, html.EscapeString(want)) {
			t.Errorf("the list page does not name its store as %q:\n%s", want, list)
		}
	})
	t.Run("a row opens the profile in pprof's flame graph", func(t *testing.T) {
		code, body, err := get(link)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusOK || !strings.Contains(body, "RunBackgroundLoad") {
			t.Errorf("GET %s: %d, want 200 and the flame graph naming the sample app's RunBackgroundLoad goroutine:\n%.2000s", link, code, body)
		}
	})
	t.Run("the UI only reads: a POST is refused", func(t *testing.T) {
		resp, err := hc.Post(uiURL+"/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /: %d, want 405", resp.StatusCode)
		}
	})
}
