//go:build linux

package agent

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	googlepprof "github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/flight"
	"github.com/kprof/kprof/internal/testenv"
)

// recorderWindow is the flight recorder's window in these tests: short, so
// that the test sees samples expire, and a pin keep them.
const recorderWindow = 8 * time.Second

// The real agent (eBPF sampler at 99 Hz, 1 s intervals) on a simulated node
// (envtest + kwok), burners in real cgroups whose paths carry the UIDs of kwok
// pods: the operator's Client fetches a pod's profile over HTTP, covering the
// seconds before the request, dominated by the burner's hot function; a pin
// keeps a pod's seconds past the window; an idle pod gets an empty profile; a
// pod elsewhere is not found.
func TestFlightRecorderServesAPodsSecondsBeforeTheRequest(t *testing.T) {
	requireBPF(t)
	cluster := testenv.StartCluster(t, testenv.ClusterOptions{WithoutMetricsServer: true})
	node := cluster.Nodes[0]
	const ns = "flight"
	podA := cluster.CreatePod(t, testenv.PodSpec{Namespace: ns, Name: "burner-a"})
	podB := cluster.CreatePod(t, testenv.PodSpec{Namespace: ns, Name: "burner-b"})
	cluster.CreatePod(t, testenv.PodSpec{Namespace: ns, Name: "idle"})
	cluster.Kubepods(t) // the node's kubepods tree, before the agent starts
	startCgroupBurner(t, cluster, podA)
	startCgroupBurner(t, cluster, podB)

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cpu.yaml"), plainConfig("cpu", 1, "cpu-clock"))
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, "s3cret-token\n")
	logs := newLogLines(t)
	a, err := New(Config{
		ConfigDir: dir, Kubeconfig: cluster.Kubeconfig, NodeName: node,
		MetricsAddr: "0", HealthAddr: "0",
		RecorderWindow: recorderWindow, RecorderAddr: "127.0.0.1:0", RecorderTokenFile: tokenFile,
		Logger: testLogger(t, logs), Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	base := "http://" + a.RecorderAddr()
	fileToken := flight.FileToken(tokenFile)
	client := &flight.Client{Token: func(context.Context) (string, error) { return fileToken() }}
	// fetch gives each call a deadline that bounds a hang only: the agent waits
	// for the samples past the window's end, and its collector runs late on a
	// loaded machine.
	fetch := func(t *testing.T, c *flight.Client, req flight.Request) (flight.Profile, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		defer cancel()
		return c.Fetch(ctx, base, req)
	}
	hold := func(pod string, sec int) func() (bool, string) {
		return func() (bool, string) {
			ev, w, err := a.Recorder().Query(ns, pod, time.Now().Add(-time.Hour), time.Now())
			if err != nil {
				return false, err.Error()
			}
			return len(ev.Samples) > 0 && w.End.Sub(w.Start) >= time.Duration(sec)*time.Second,
				"the recorder holds " + w.End.Sub(w.Start).String() + " of " + pod
		}
	}
	// The recorder holds a few seconds of both burners.
	testenv.Eventually(t, 2*time.Minute, hold("burner-a", 4))
	testenv.Eventually(t, 2*time.Minute, hold("burner-b", 4))

	t.Run("a fetch covers the seconds before the request, dominated by the hot function", func(t *testing.T) {
		requested := time.Now()
		p, err := fetch(t, client, flight.Request{Namespace: ns, Pod: "burner-b",
			From: requested.Add(-recorderWindow), To: requested.Add(time.Second), Reason: "cpu 93% of request ≥ 80%"})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("window [%s, %s] around the request", p.Start.Sub(requested), p.End.Sub(requested))
		if before := requested.Sub(p.Start); before < 3*time.Second {
			t.Errorf("the profile starts %s before the request, want at least 3s", before)
		}
		if !p.End.After(requested) {
			t.Errorf("the profile ends %s, before the window's end was flushed", p.End.Sub(requested))
		}
		prof := checkHot(t, p.Data)
		for k, want := range map[string]string{"pod": "burner-b", "namespace": ns, "node": node, "reason": "cpu 93% of request ≥ 80%"} {
			if got := prof.Sample[0].Label[k]; len(got) != 1 || got[0] != want {
				t.Errorf("label %s = %v, want %q", k, got, want)
			}
		}
	})

	t.Run("a pin keeps a pod's seconds past the window until fetched", func(t *testing.T) {
		pinned := time.Now().Add(-2 * time.Second)
		a.Recorder().Pin(ns, "burner-a", pinned)
		// Wait until the unpinned burner-b's seconds at the pinned time have left
		// the window (Query releases no pin of burner-b: it has none).
		testenv.Eventually(t, 3*time.Minute, func() (bool, string) {
			_, w, err := a.Recorder().Query(ns, "burner-b", pinned, time.Now())
			if err != nil {
				return false, err.Error()
			}
			return w.Start.After(pinned), "burner-b still covers from " + w.Start.Sub(pinned).String() + " after the pinned time"
		})
		pa, err := fetch(t, client, flight.Request{Namespace: ns, Pod: "burner-a", From: pinned, To: a.Recorder().Flushed()})
		if err != nil {
			t.Fatal(err)
		}
		if pa.Start.After(pinned) {
			t.Errorf("pinned burner-a covers from %s after the pin, want the pinned time", pa.Start.Sub(pinned))
		}
		checkHot(t, pa.Data)
	})

	t.Run("an idle pod on the node gets an empty profile", func(t *testing.T) {
		now := time.Now()
		p, err := fetch(t, client, flight.Request{Namespace: ns, Pod: "idle", From: now.Add(-3 * time.Second), To: now})
		if err != nil {
			t.Fatal(err)
		}
		prof, err := googlepprof.ParseData(p.Data)
		if err != nil {
			t.Fatal(err)
		}
		if len(prof.Sample) != 0 || !p.End.After(p.Start) {
			t.Errorf("%d samples over [%s, %s], want none over a window", len(prof.Sample), p.Start, p.End)
		}
	})

	t.Run("a pod elsewhere and a wrong token are refused", func(t *testing.T) {
		now := time.Now()
		req := flight.Request{Namespace: ns, Pod: "nowhere", From: now.Add(-3 * time.Second), To: now}
		_, err := fetch(t, client, req)
		var se *flight.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusNotFound || se.Message != "pod flight/nowhere is not on node "+node {
			t.Errorf("err = %v, want 404 pod flight/nowhere is not on node %s", err, node)
		}
		bad := &flight.Client{Token: func(context.Context) (string, error) { return "guess", nil }}
		req.Pod = "burner-a"
		if _, err := fetch(t, bad, req); !errors.As(err, &se) || se.Code != http.StatusForbidden {
			t.Errorf("err = %v, want 403", err)
		}
	})
}

// checkHot parses a fetched profile and checks flightHotLoop is in the stacks
// of at least 80 % of its CPU time.
func checkHot(t *testing.T, data []byte) *googlepprof.Profile {
	t.Helper()
	prof, err := googlepprof.ParseData(data)
	if err != nil {
		t.Fatalf("parse the fetched profile: %v", err)
	}
	var total, hot int64
	for _, s := range prof.Sample {
		total += s.Value[1]
		if inStack(s, ".flightHotLoop") {
			hot += s.Value[1]
		}
	}
	t.Logf("flightHotLoop: %s of %s of CPU", time.Duration(hot), time.Duration(total))
	if total == 0 || float64(hot) < 0.8*float64(total) {
		t.Errorf("flightHotLoop has %s of %s of CPU, want at least 80%%", time.Duration(hot), time.Duration(total))
	}
	return prof
}

func inStack(s *googlepprof.Sample, suffix string) bool {
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function != nil && strings.HasSuffix(l.Function.Name, suffix) {
				return true
			}
		}
	}
	return false
}
