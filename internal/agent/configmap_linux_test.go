//go:build linux

package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kprof/kprof/internal/agent/profile"
)

// kubelet's layout of a mounted ConfigMap: the data in a timestamped
// directory, ..data a symlink to it, and each key a symlink through ..data.
func writeConfigMapData(t *testing.T, dir, stamp string, files map[string]string) {
	t.Helper()
	data := filepath.Join(dir, stamp)
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(data, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Swap ..data atomically, as kubelet's AtomicWriter does.
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(stamp, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAgentFollowsAConfigMapSymlinkSwap(t *testing.T) {
	requireBPF(t)
	startBurner(t)
	dir := t.TempDir()
	writeConfigMapData(t, dir, "..2026_01_01_00_00_00.000000001", map[string]string{
		"profile.yaml": plainConfig("cm-profile", 1, "cpu-clock"),
	})
	ta := startAgent(t, dir)
	ta.capture.waitEvent(t, fastWait, "of cm-profile v1", nil, func(ev *profile.Event) bool {
		return ev.Config == "cm-profile" && ev.Version == 1
	})

	writeConfigMapData(t, dir, "..2026_01_01_00_01_00.000000002", map[string]string{
		"profile.yaml": plainConfig("cm-profile", 2, "task-clock"),
	})
	if err := os.RemoveAll(filepath.Join(dir, "..2026_01_01_00_00_00.000000001")); err != nil {
		t.Fatal(err)
	}
	ev := ta.capture.waitEvent(t, fastWait, "of cm-profile v2 after the ..data swap", nil, func(ev *profile.Event) bool {
		return ev.Config == "cm-profile" && ev.Version == 2
	})
	if ev.EventName != "task-clock" {
		t.Errorf("cm-profile v2 samples %s, want task-clock", ev.EventName)
	}
}

func TestAgentKeepsRunningWhenACollectorFails(t *testing.T) {
	requireBPF(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cycles.yaml"), plainConfig("cycles", 1, "cpu-cycles"))
	writeFile(t, filepath.Join(dir, "steady.yaml"), plainConfig("steady", 1, "cpu-clock"))
	ta := startAgent(t, dir)

	if got := ta.collectors(t, stateRunning); got == 2 {
		t.Skip("cpu-cycles opened: this machine has a PMU, so a collector cannot be made to fail to open")
	}
	_, line := ta.logs.waitLog(t, 0, fastWait, map[string]string{"logger": "agent", "msg": "collector failed to start", "config": "cycles"})
	if err, _ := line["err"].(string); !strings.Contains(err, "PMU") {
		t.Errorf("the failure %q does not carry the BPF error naming the missing PMU", err)
	}
	if got := ta.collectors(t, stateFailed); got != 1 {
		t.Errorf("kprof_agent_collectors{state=failed} = %v, want 1", got)
	}
	if got := ta.collectors(t, stateRunning); got != 1 {
		t.Errorf("kprof_agent_collectors{state=running} = %v, want 1", got)
	}
	ta.capture.waitEvent(t, fastWait, "of steady beside the failed collector", nil, func(ev *profile.Event) bool {
		return ev.Config == "steady"
	})

	// Removing the failed config clears its failure.
	from := ta.logs.len()
	if err := os.Remove(filepath.Join(dir, "cycles.yaml")); err != nil {
		t.Fatal(err)
	}
	// The watcher logs "config removed" before the agent applies the removal:
	// wait for the state itself.
	ta.logs.waitLog(t, from, fastWait, map[string]string{"logger": "config", "msg": "config removed", "name": "cycles"})
	ta.waitCollectors(t, stateFailed, 0, "after the failed config was removed")
	if got := ta.collectors(t, stateRunning); got != 1 {
		t.Errorf("kprof_agent_collectors{state=running} = %v after the failed config was removed, want 1", got)
	}
}
