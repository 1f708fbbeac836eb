//go:build linux

package usage

import (
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/testenv"
)

// These tests place a CPU-burning process in real cgroups of this machine (cgroup v1
// controllers, with an empty cgroup2 at /sys/fs/cgroup/unified) under a kubelet-style path
// below a unique top directory, as kind nests them, and read them with a Reader. They need
// root; they fail, not skip, when the machine cannot run them.

// burnSeconds is how much CPU the burner uses between the two readings.
const burnSeconds = 0.3

// cpuTolerance is how far the cgroup's CPU time may be from the process's own: utime and
// stime are in 10 ms ticks, each cut down, and the two are read one after the other.
func cpuTolerance(seconds float64) float64 { return 0.03 + 0.02*seconds }

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("creating cgroups and moving processes into them needs root; run the tests as root")
	}
}

// measure reads twice around burnSeconds of the stopped burner's CPU and returns both
// readings with the CPU time the burner itself says it used in between.
func measure(t *testing.T, r *Reader, pid int) (m1, m2 *profile.Metrics, burned float64) {
	t.Helper()
	signalAndWait(t, pid, syscall.SIGSTOP)
	before := procCPU(t, pid)
	m1 = readOnce(t, r, time.Now())
	burnAtLeast(t, pid, burnSeconds)
	after := procCPU(t, pid)
	m2 = readOnce(t, r, time.Now())
	return m1, m2, after - before
}

// checkCPU checks the container's CPU counter grew across two readings by what the burner
// used, with a start at the first reading.
func checkCPU(t *testing.T, m1, m2 *profile.Metrics, cid, podUID string, burned float64) {
	t.Helper()
	wantLabels := map[string]string{"container_id": cid, "pod_uid": podUID}
	c1, ok1 := find(m1, profile.ContainerCPUTime, "container_id", cid)
	c2, ok2 := find(m2, profile.ContainerCPUTime, "container_id", cid)
	if !ok1 || !ok2 {
		t.Fatalf("no %s point for container %s: first reading %+v, second %+v", profile.ContainerCPUTime, cid, m1.Points, m2.Points)
	}
	for _, c := range []profile.Point{c1, c2} {
		if c.Kind != profile.Counter || c.Unit != "s" || !c.Start.Equal(m1.Time) || !maps.Equal(c.Labels, wantLabels) {
			t.Errorf("container CPU point %+v; want a Counter in s starting at the first reading %s, labels %v", c, m1.Time, wantLabels)
		}
	}
	grew := c2.Value - c1.Value
	t.Logf("container CPU time %.4fs → %.4fs: grew %.4fs; the burner used %.2fs by its /proc/PID/stat", c1.Value, c2.Value, grew, burned)
	if math.Abs(grew-burned) > cpuTolerance(burned) {
		t.Errorf("container CPU time grew %.4fs between the readings, the burner used %.2fs (tolerance %.3fs)", grew, burned, cpuTolerance(burned))
	}
	p2, ok := find(m2, profile.PodCPUTime, "pod_uid", podUID)
	if !ok || p2.Value < c2.Value || p2.Kind != profile.Counter || !maps.Equal(p2.Labels, map[string]string{"pod_uid": podUID}) {
		t.Errorf("pod CPU point %+v (found %v); want a Counter of at least the container's %.4fs, labels pod_uid only", p2, ok, c2.Value)
	}
}

func TestRealCgroupV1(t *testing.T) {
	requireRoot(t)
	mounts := cgroupMounts(t)
	cpuMnt, memMnt := mounts["cpuacct"], mounts["memory"]
	if cpuMnt == "" || memMnt == "" {
		t.Fatalf("cgroup v1 cpuacct (%q) and memory (%q) hierarchies must be mounted for this test; /proc/self/mounts has %v", cpuMnt, memMnt, mounts)
	}
	if filepath.Dir(cpuMnt) != DefaultRoot || filepath.Dir(memMnt) != DefaultRoot {
		t.Fatalf("the cpuacct (%s) and memory (%s) hierarchies must be mounted in %s for this test", cpuMnt, memMnt, DefaultRoot)
	}
	podUID, cid := string(uuid.NewUUID()), randomHex(t, 64)
	top := "kprof-usage-test-" + cid[:12]
	rel := filepath.Join(top, "kubepods", "burstable", "pod"+podUID, cid)
	for _, mnt := range []string{cpuMnt, memMnt} {
		testenv.MakeCgroup(t, filepath.Join(mnt, top), filepath.Join(mnt, rel))
	}
	pid := startBurner(t, filepath.Join(cpuMnt, rel, "cgroup.procs"), filepath.Join(memMnt, rel, "cgroup.procs"))

	r := newReader(t, Config{}) // Root /sys/fs/cgroup
	m1, m2, burned := measure(t, r, pid)
	if r.layout.kind != layoutV1 && r.layout.kind != layoutHybrid {
		t.Errorf("layout of %s = %s, want v1 or hybrid", DefaultRoot, r.layout.kind)
	}
	checkCPU(t, m1, m2, cid, podUID, burned)

	wantLabels := map[string]string{"container_id": cid, "pod_uid": podUID}
	mem, ok := find(m2, profile.ContainerMemoryUsage, "container_id", cid)
	t.Logf("container memory usage %.0f bytes; the burner touched %d after moving in", mem.Value, burnMemory)
	// Not swapped out (no swap here), the touched memory is all charged: at least burnMemory.
	if !ok || mem.Value < burnMemory || mem.Kind != profile.Gauge || mem.Unit != "By" || !mem.Start.IsZero() || !maps.Equal(mem.Labels, wantLabels) {
		t.Errorf("container memory point %+v (found %v); want a Gauge in By of at least %d, labels %v", mem, ok, burnMemory, wantLabels)
	}
	if pm, ok := find(m2, profile.PodMemoryUsage, "pod_uid", podUID); !ok || pm.Value < mem.Value {
		t.Errorf("pod memory point %+v (found %v); want at least the container's %.0f", pm, ok, mem.Value)
	}
	if st := r.Stats(); st.Malformed != 0 || st.Truncated != 0 {
		t.Errorf("Stats() = %+v, want nothing malformed or cut short", st)
	}
}

func TestRealCgroupV2(t *testing.T) {
	requireRoot(t)
	mnt := cgroupMounts(t)["cgroup2"]
	if mnt == "" {
		t.Fatal("no cgroup2 mounted (/proc/self/mounts): this machine has one at /sys/fs/cgroup/unified, without controllers")
	}
	podUID, cid := string(uuid.NewUUID()), randomHex(t, 64)
	top := filepath.Join(mnt, "kprof-usage-test-"+cid[:12])
	dir := filepath.Join(top, "kubepods.slice", "kubepods-burstable.slice",
		"kubepods-burstable-pod"+strings.ReplaceAll(podUID, "-", "_")+".slice", "cri-containerd-"+cid+".scope")
	testenv.MakeCgroup(t, top, dir)
	pid := startBurner(t, filepath.Join(dir, "cgroup.procs"))

	r := newReader(t, Config{Root: mnt})
	m1, m2, burned := measure(t, r, pid)
	if r.layout.kind != layoutV2 {
		t.Errorf("layout of %s = %s, want v2", mnt, r.layout.kind)
	}
	checkCPU(t, m1, m2, cid, podUID, burned)

	// memory.current exists only where the memory controller is enabled (not on this
	// machine's unified hierarchy): a point when it does, none when it does not.
	mem, ok := find(m2, profile.ContainerMemoryUsage, "container_id", cid)
	if _, err := os.Stat(filepath.Join(dir, "memory.current")); err == nil {
		if !ok || mem.Value <= 0 {
			t.Errorf("container memory point %+v (found %v); want one above 0: memory.current exists", mem, ok)
		}
	} else if ok {
		t.Errorf("container memory point %+v without a memory.current file", mem)
	}
	if st := r.Stats(); st.Malformed != 0 || st.ReadErrors != 0 || st.Truncated != 0 {
		t.Errorf("Stats() = %+v, want no trouble (a missing memory.current is not one)", st)
	}
}
