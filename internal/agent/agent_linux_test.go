//go:build linux

package agent

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
	"github.com/kprof/kprof/internal/testenv"
)

// How long the tests wait for what the configs they write produce (the seed's
// interval is 10s, the others' 1s). The waits poll, so they end as soon as the state
// holds; their length only matters on a machine so loaded (CI beside other test runs
// and CPU burners) that the agent gets a small share of a CPU while it symbolizes the
// samples of every process on the node: under 6 burners on 2 CPUs, 15 s was too short.
const (
	seedWait = 2 * time.Minute
	fastWait = 90 * time.Second
)

type testAgent struct {
	*Agent
	reg     *prometheus.Registry
	capture *captureConsumer
	logs    *logLines
	debug   *logLines // not JSON: the debug consumer's lines, unparsed
}

func startAgent(t *testing.T, dir string) *testAgent {
	t.Helper()
	ta := &testAgent{
		reg:     prometheus.NewRegistry(),
		capture: newCaptureConsumer(),
		logs:    newLogLines(t),
		debug:   newLogLines(t),
	}
	a, err := New(Config{
		ConfigDir:   dir,
		NodeName:    "test-node",
		ClusterName: "test-cluster",
		NoCluster:   true,
		MetricsAddr: "127.0.0.1:0",
		HealthAddr:  "127.0.0.1:0",
		EnableDebug: true,
		DebugOut:    ta.debug,
		Consumers:   []router.Consumer{ta.capture},
		Logger:      testLogger(t, ta.logs),
		Registry:    ta.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ta.Agent = a
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ta.stop(t) })
	return ta
}

func (ta *testAgent) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fastWait)
	defer cancel()
	if err := ta.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func (ta *testAgent) collectors(t *testing.T, state string) float64 {
	t.Helper()
	return metricValue(t, ta.reg, "kprof_agent_collectors", map[string]string{"state": state})
}

// waitCollectors polls kprof_agent_collectors{state} until it is want: the
// gauge is set after the change is applied, which follows the log lines and
// events that announce it.
func (ta *testAgent) waitCollectors(t *testing.T, state string, want float64, when string) {
	t.Helper()
	testenv.Eventually(t, fastWait, func() (bool, string) {
		got := ta.collectors(t, state)
		return got == want, fmt.Sprintf("kprof_agent_collectors{state=%s} = %v %s, want %v", state, got, when, want)
	})
}

func TestAgentFollowsTheConfigDirectory(t *testing.T) {
	requireBPF(t)
	burner := startBurner(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cpu-profile.yaml"), seedConfig(t))
	writeFile(t, filepath.Join(dir, "steady.yaml"), plainConfig("steady", 1, "cpu-clock"))
	ta := startAgent(t, dir)

	// The configs already there run when Start returns.
	if got := ta.collectors(t, stateRunning); got != 2 {
		t.Fatalf("kprof_agent_collectors{state=running} = %v after Start, want 2", got)
	}
	if code, body := httpGet(t, "http://"+ta.HealthAddr()+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d %s", code, body)
	}

	t.Log("the seed config (a base64 protobuf, 10s interval) publishes")
	seed := ta.capture.waitEvent(t, seedWait, "of the seed config", nil, func(ev *profile.Event) bool {
		return ev.Config == "cpu-profile"
	})
	if seed.Version != 1 || seed.EventName != "cpu-clock" || seed.Period != 1281018368 {
		t.Errorf("seed event: version %d event %s period %d, want 1 cpu-clock 1281018368", seed.Version, seed.EventName, seed.Period)
	}
	if seed.Labels["node"] != "test-node" || seed.Labels["cluster"] != "test-cluster" {
		t.Errorf("seed event labels %v, want node test-node and cluster test-cluster", seed.Labels)
	}

	t.Log("a new config starts a collector whose events hold the busy process")
	fast := filepath.Join(dir, "fast.yaml")
	writeFile(t, fast, plainConfig("fast", 1, "cpu-clock"))
	ta.capture.waitEvent(t, fastWait, "of fast v1 with the burner's samples", nil, func(ev *profile.Event) bool {
		if ev.Config != "fast" || ev.Version != 1 {
			return false
		}
		for _, s := range ev.Samples {
			if s.PID == burner && s.Count > 0 {
				return true
			}
		}
		return false
	})
	ta.waitCollectors(t, stateRunning, 3, "with three configs")
	if got := metricValue(t, ta.reg, "kprof_agent_samples_total", map[string]string{"config": "fast"}); got <= 0 {
		t.Errorf("kprof_agent_samples_total{config=fast} = %v after an event with samples, want > 0", got)
	}

	t.Log("a higher version restarts the collector: no v1 event after the first v2 one")
	writeFile(t, fast, plainConfig("fast", 2, "cpu-clock"))
	ta.capture.waitEvent(t, fastWait, "of fast v2", nil, func(ev *profile.Event) bool {
		return ev.Config == "fast" && ev.Version == 2
	})
	noV1 := func(ev *profile.Event) {
		if ev.Config == "fast" && ev.Version == 1 {
			t.Errorf("fast v1 event (%s to %s) after the restart to v2", ev.Start, ev.End)
		}
	}

	t.Log("a corrupt file is rejected, naming the file, and the last good collector keeps publishing")
	from := ta.logs.len()
	writeFile(t, fast, "name: fast\nversion: 3\nspec:\n  event: cpu-clock\n  frequency: 99\n  intervalSeconds: 0\n")
	_, line := ta.logs.waitLog(t, from, fastWait, map[string]string{"logger": "agent", "msg": "config rejected", "err": fast})
	if err, _ := line["err"].(string); !strings.Contains(err, "intervalSeconds") {
		t.Errorf("rejection %q does not name the field intervalSeconds", err)
	}
	rejectedAt := time.Now()
	ta.capture.waitEvent(t, fastWait, "of fast v2 after the rejection", noV1, func(ev *profile.Event) bool {
		return ev.Config == "fast" && ev.Version == 2 && ev.Start.After(rejectedAt)
	})
	if got := ta.collectors(t, stateRunning); got != 3 {
		t.Errorf("kprof_agent_collectors{state=running} = %v after a rejected file, want 3", got)
	}

	t.Log("a deleted file stops its collector: no event of it after the removal")
	from = ta.logs.len()
	if err := os.Remove(fast); err != nil {
		t.Fatal(err)
	}
	ta.logs.waitLog(t, from, fastWait, map[string]string{"logger": "agent", "msg": "collector stopped", "config": "fast", "reason": "removed"})
	removedAt := time.Now()
	// An event of steady that started after the removal was published after
	// the removed collector's last one; an event of fast after it is an error.
	afterRemoval := false
	ta.capture.waitEvent(t, fastWait, "of steady two intervals after the removal", func(ev *profile.Event) {
		noV1(ev)
		if ev.Config == "fast" && afterRemoval {
			t.Errorf("fast event (%s to %s) after its file was removed", ev.Start, ev.End)
		}
		if ev.Config == "steady" && ev.Start.After(removedAt) {
			afterRemoval = true
		}
	}, func(ev *profile.Event) bool {
		return ev.Config == "steady" && ev.Start.After(removedAt.Add(time.Second))
	})
	ta.waitCollectors(t, stateRunning, 2, "after the removal")

	t.Log("/metrics serves the agent's and the router's metrics; the debug consumer printed lines")
	code, body := httpGet(t, "http://"+ta.MetricsAddr()+"/metrics")
	for _, want := range []string{
		`kprof_agent_collectors{state="running"} 2`,
		`kprof_agent_samples_total{config="steady"}`,
		`kprof_agent_lost_samples_total{config="steady",reason="map_full"}`,
		`kprof_agent_unwound_frames_total{config="steady",method="table"}`,
		`kprof_agent_unwound_frames_total{config="steady",method="frame_pointer"}`,
		`kprof_agent_user_stacks_total{config="steady",end="complete"}`,
		`kprof_agent_router_events_total{consumer="capture",result="delivered"}`,
		`kprof_agent_router_events_total{consumer="debug",result="delivered"}`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (status %d) lacks %s", code, want)
		}
	}
	ta.debug.waitLog(t, 0, fastWait, map[string]string{"unparsed": "config=steady version=1 event=cpu-clock frequency=99"})

	t.Log("shutdown flushes every collector's last interval and drains the router")
	beforeStop := time.Now()
	ta.stop(t)
	select {
	case <-ta.capture.shutdown:
	default:
		t.Fatal("the capture consumer was not shut down")
	}
	// The seed's interval is 10s: its event that ends after Shutdown began is
	// the final flush.
	flushed := false
	for len(ta.capture.events) > 0 {
		if ev := <-ta.capture.events; ev.Config == "cpu-profile" && ev.End.After(beforeStop) {
			flushed = true
		}
	}
	if !flushed {
		t.Error("no final cpu-profile event flushed at shutdown")
	}
	if resp, err := http.Get("http://" + ta.HealthAddr() + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("/healthz answers %d after shutdown, want the server closed", resp.StatusCode)
	}
}
