//go:build linux

package attribute

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/uuid"
)

// cgroupLayout is a kubelet-style cgroup path in one cgroup version.
type cgroupLayout struct {
	name        string
	v2          bool
	path        func(podUID, containerID string) string
	wantRuntime string // what the path alone tells
}

var layouts = []cgroupLayout{
	{
		name: "v1 cgroupfs driver",
		path: func(podUID, containerID string) string {
			return filepath.Join("kubepods", "burstable", "pod"+podUID, containerID)
		},
	},
	{
		name: "v2 systemd driver with containerd",
		v2:   true,
		path: func(podUID, containerID string) string {
			u := strings.ReplaceAll(podUID, "-", "_")
			return filepath.Join("kubepods.slice", "kubepods-burstable.slice", "kubepods-burstable-pod"+u+".slice", "cri-containerd-"+containerID+".scope")
		},
		wantRuntime: RuntimeContainerd,
	},
}

// v1Hierarchies are the v1 hierarchies a test process may be moved in, by preference. Not
// memory (this process's memory limit may live there) nor cpuset (a new cpuset cgroup
// needs cpus and mems before it takes a process).
var v1Hierarchies = []string{"pids", "cpu", "freezer", "name=systemd"}

// cgroupMount finds where the hierarchy a layout needs is mounted: a v1 hierarchy from
// v1Hierarchies, or the cgroup2 mount.
func cgroupMount(t *testing.T, v2 bool) string {
	t.Helper()
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	found := map[string]string{} // v1 option or "cgroup2" → mount point
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text()) // device mountpoint fstype options ...
		if len(fields) < 4 {
			continue
		}
		switch fields[2] {
		case "cgroup2":
			if _, ok := found["cgroup2"]; !ok {
				found["cgroup2"] = fields[1]
			}
		case "cgroup":
			for _, opt := range strings.Split(fields[3], ",") {
				if slices.Contains(v1Hierarchies, opt) {
					found[opt] = fields[1]
				}
			}
		}
	}
	if v2 {
		if m, ok := found["cgroup2"]; ok {
			return m
		}
		t.Skip("no cgroup2 mount in /proc/self/mounts: a cgroup v1-only host cannot place a process in a v2 cgroup")
	}
	for _, h := range v1Hierarchies {
		if m, ok := found[h]; ok {
			return m
		}
	}
	t.Skipf("no cgroup v1 hierarchy among %v mounted: a cgroup v2-only host cannot place a process in a v1 cgroup", v1Hierarchies)
	return ""
}

func randomContainerID(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startInCgroup starts `sleep` and moves it into a new cgroup at the layout's path (under
// a unique top directory) of a real hierarchy. The process is killed and the cgroups
// removed in t.Cleanup.
func startInCgroup(t *testing.T, l cgroupLayout, podUID, containerID string) int32 {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("creating cgroups needs root: run make test as root")
	}
	mnt := cgroupMount(t, l.v2)
	top := filepath.Join(mnt, "kprof-attribute-test-"+containerID[:12])
	rel := l.path(podUID, containerID)
	dir := filepath.Join(top, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("cannot create cgroup %s (is the hierarchy at %s writable?): %v", dir, mnt, err)
	}
	t.Cleanup(func() {
		// Deepest first; a cgroup directory is removed with rmdir once it has no processes.
		for d := dir; ; d = filepath.Dir(d) {
			if err := os.Remove(d); err != nil {
				t.Errorf("remove cgroup %s: %v", d, err)
			}
			if d == top {
				return
			}
		}
	})
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatalf("cannot move pid %d into cgroup %s (is the hierarchy at %s writable?): %v", pid, dir, mnt, err)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "/"+filepath.ToSlash(rel)+"\n") {
		t.Fatalf("pid %d is not in cgroup %s after the move; /proc/%d/cgroup:\n%s", pid, rel, pid, data)
	}
	return int32(pid)
}

// sleepExe is what /proc/PID/exe of `sleep` points to.
func sleepExe(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	if p, err = filepath.EvalSymlinks(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProcessInRealContainerCgroup(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name+" gives the container ID and pod UID", func(t *testing.T) {
			podUID, containerID := string(uuid.NewUUID()), randomContainerID(t)
			pid := startInCgroup(t, l, podUID, containerID)
			a := newAttributor(t, Config{}) // the real /proc, no cluster
			got, err := a.Process(pid)
			want := Process{PID: pid, Comm: "sleep", Exe: sleepExe(t), ContainerID: containerID, Runtime: l.wantRuntime, PodUID: podUID}
			if err != nil || got != want {
				t.Fatalf("Process(%d) = %+v, %v; want %+v", pid, got, err, want)
			}
			wantLabels := map[string]string{"pid": strconv.Itoa(int(pid)), "comm": "sleep", "exe": want.Exe, "container_id": containerID}
			if labels := a.Labels(pid); !maps.Equal(labels, wantLabels) {
				t.Errorf("Labels(%d) without a cluster = %v, want %v", pid, labels, wantLabels)
			}
		})
	}
}
