package usage

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kprof/kprof/internal/agent/attribute"
	"github.com/kprof/kprof/internal/agent/profile"
)

// cgroupfsV2 is a v2 root; pod and container paths of the cgroupfs driver.
func cgroupfsV2(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	writeTree(t, root, map[string]string{"cgroup.controllers": "cpu memory\n"})
	return root
}

func podDir(uid string) string      { return "kubepods/burstable/pod" + uid }
func ctrDir(uid, cid string) string { return podDir(uid) + "/" + cid }

// find returns the point named name with label key=value.
func find(m *profile.Metrics, name, key, value string) (profile.Point, bool) {
	for _, p := range m.Points {
		if p.Name == name && p.Labels[key] == value {
			return p, true
		}
	}
	return profile.Point{}, false
}

func TestCounterStart(t *testing.T) {
	root := cgroupfsV2(t)
	writeTree(t, root, merge(v2Files(podDir(uid1), 1_000_000, 1), v2Files(ctrDir(uid1, cid1), 1_000_000, 1)))
	r := newReader(t, Config{Root: root})

	steps := []struct {
		name     string
		change   func()
		at       time.Time
		wantPod  float64
		wantCtr  float64 // -1: no container point
		podStart time.Time
		ctrStart time.Time
	}{
		{"the first reading starts both counters", func() {}, t0, 1, 1, t0, t0},
		{"a growing counter keeps its start",
			func() {
				writeTree(t, root, merge(v2Files(podDir(uid1), 3_000_000, 1), v2Files(ctrDir(uid1, cid1), 2_000_000, 1)))
			},
			t0.Add(time.Second), 3, 2, t0, t0},
		{"a counter that goes backwards (container recreated with the same ID) starts again",
			func() {
				writeTree(t, root, merge(v2Files(podDir(uid1), 4_000_000, 1), v2Files(ctrDir(uid1, cid1), 500_000, 1)))
			},
			t0.Add(2 * time.Second), 4, 0.5, t0, t0.Add(2 * time.Second)},
		{"a vanished container has no point",
			func() {
				if err := os.RemoveAll(filepath.Join(root, ctrDir(uid1, cid1))); err != nil {
					t.Fatal(err)
				}
			},
			t0.Add(3 * time.Second), 4, -1, t0, time.Time{}},
		{"a container that comes back starts again even with a higher value",
			func() { writeTree(t, root, v2Files(ctrDir(uid1, cid1), 9_000_000, 1)) },
			t0.Add(4 * time.Second), 4, 9, t0, t0.Add(4 * time.Second)},
	}
	for _, s := range steps {
		s.change()
		m := readOnce(t, r, s.at)
		pod, ok := find(m, profile.PodCPUTime, "pod_uid", uid1)
		if !ok || pod.Value != s.wantPod || !pod.Start.Equal(s.podStart) {
			t.Errorf("%s: pod point %+v (found %v), want value %g start %s", s.name, pod, ok, s.wantPod, s.podStart)
		}
		ctr, ok := find(m, profile.ContainerCPUTime, "container_id", cid1)
		switch {
		case s.wantCtr < 0 && ok:
			t.Errorf("%s: container point %+v, want none", s.name, ctr)
		case s.wantCtr >= 0 && (!ok || ctr.Value != s.wantCtr || !ctr.Start.Equal(s.ctrStart)):
			t.Errorf("%s: container point %+v (found %v), want value %g start %s", s.name, ctr, ok, s.wantCtr, s.ctrStart)
		}
	}
	if st := r.Stats(); st != (Stats{Readings: uint64(len(steps))}) {
		t.Errorf("Stats() = %+v, want %d readings without trouble", st, len(steps))
	}
}

func TestVanishedAndMalformedFiles(t *testing.T) {
	root := cgroupfsV2(t)
	writeTree(t, root, merge(
		v2Files(podDir(uid1), 3_000_000, 3<<20),
		map[string]string{
			ctrDir(uid1, cid1) + "/cpu.stat":       "user_usec 5\nsystem_usec 1\n", // no usage_usec
			ctrDir(uid1, cid1) + "/memory.current": "1048576\n",
			ctrDir(uid1, cid2) + "/cpu.stat":       "usage_usec abc\n",
			ctrDir(uid1, cid2) + "/memory.current": "12 34\n",
			ctrDir(uid1, cid3) + "/cpu.stat":       "usage_usec 1000000\n",
			ctrDir(uid1, cid3) + "/memory.current": strings.Repeat("1", maxValueFile+1), // over the size limit
		},
	))
	// A container whose files vanished between listing and reading (exited): left out quietly.
	mkdirs(t, root, ctrDir(uid1, node))
	logs := &logRecorder{}
	r := newReader(t, Config{Root: root, Logger: slog.New(logs)})

	m := readOnce(t, r, t0)
	want := concat(
		podPoints(uid1, 3, 3<<20),
		[]profile.Point{memPoint(profile.ContainerMemoryUsage, 1<<20, labels("container_id", cid1, "pod_uid", uid1))},
		[]profile.Point{cpuPoint(profile.ContainerCPUTime, 1, t0, labels("container_id", cid3, "pod_uid", uid1))},
	)
	checkPoints(t, m.Points, want)
	if st := r.Stats(); st != (Stats{Readings: 1, Malformed: 4}) {
		t.Errorf("Stats() = %+v, want 4 malformed files and nothing else", st)
	}
	lines := logs.lines()
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "malformed cgroup file") || !strings.Contains(lines[0], cid1+"/cpu.stat: no usage_usec line") {
		t.Fatalf("logs after the first reading = %q; want one warning about %s/cpu.stat", lines, cid1)
	}

	readOnce(t, r, t0.Add(30*time.Second))
	if lines := logs.lines(); len(lines) != 1 {
		t.Errorf("logs after a second reading within a minute = %q; want still one (rate-limited)", lines)
	}
	readOnce(t, r, t0.Add(61*time.Second))
	lines = logs.lines()
	if len(lines) != 2 || !strings.HasSuffix(lines[1], "suppressed=7") {
		t.Errorf("logs a minute later = %q; want a second warning saying suppressed=7", lines)
	}
	if st := r.Stats(); st != (Stats{Readings: 3, Malformed: 12}) {
		t.Errorf("Stats() = %+v, want 12 malformed files", st)
	}
}

func TestUnreadableFileIsCountedNotFatal(t *testing.T) {
	root := cgroupfsV2(t)
	writeTree(t, root, map[string]string{ctrDir(uid1, cid1) + "/cpu.stat": "usage_usec 1000000\n"})
	mkdirs(t, root, ctrDir(uid1, cid1)+"/memory.current") // reading it fails with EISDIR
	logs := &logRecorder{}
	r := newReader(t, Config{Root: root, Logger: slog.New(logs)})
	m := readOnce(t, r, t0)
	checkPoints(t, m.Points, []profile.Point{cpuPoint(profile.ContainerCPUTime, 1, t0, labels("container_id", cid1, "pod_uid", uid1))})
	if st := r.Stats(); st != (Stats{Readings: 1, ReadErrors: 1}) {
		t.Errorf("Stats() = %+v, want one read error", st)
	}
	if lines := logs.lines(); len(lines) != 1 || !strings.HasPrefix(lines[0], "cannot read cgroup") {
		t.Errorf("logs = %q, want one warning", lines)
	}
}

func TestMaxCgroupsBoundsAReading(t *testing.T) {
	root := cgroupfsV2(t)
	// kubepods, the pod and cid2: 3 directories.
	writeTree(t, root, merge(
		map[string]string{"kubepods/pod" + uid1 + "/cpu.stat": "usage_usec 3000000\n"},
		map[string]string{"kubepods/pod" + uid1 + "/" + cid2 + "/cpu.stat": "usage_usec 2000000\n"},
	))
	r := newReader(t, Config{Root: root, MaxCgroups: 3})
	m := readOnce(t, r, t0)
	if len(m.Points) != 2 || r.Stats().Truncated != 0 {
		t.Fatalf("a reading within the bound: points %+v, stats %+v; want the pod and cid2, not truncated", m.Points, r.Stats())
	}

	// cid1 sorts before cid2: the walk stops before cid2.
	writeTree(t, root, map[string]string{"kubepods/pod" + uid1 + "/" + cid1 + "/cpu.stat": "usage_usec 1000000\n"})
	m = readOnce(t, r, t0.Add(time.Second))
	checkPoints(t, m.Points, []profile.Point{
		cpuPoint(profile.PodCPUTime, 3, t0, labels("pod_uid", uid1)),
		cpuPoint(profile.ContainerCPUTime, 1, t0.Add(time.Second), labels("container_id", cid1, "pod_uid", uid1)),
	})
	if st := r.Stats(); st.Truncated != 1 {
		t.Errorf("Stats() = %+v, want one truncated reading", st)
	}

	// Within the bound again: cid2's counter kept its start through the cut-short reading.
	if err := os.RemoveAll(filepath.Join(root, "kubepods/pod"+uid1+"/"+cid1)); err != nil {
		t.Fatal(err)
	}
	m = readOnce(t, r, t0.Add(2*time.Second))
	if p, ok := find(m, profile.ContainerCPUTime, "container_id", cid2); !ok || !p.Start.Equal(t0) {
		t.Errorf("cid2 after a cut-short reading: %+v (found %v), want start %s", p, ok, t0)
	}
}

func TestKubepodsTreesAreSearchedAgain(t *testing.T) {
	root := cgroupfsV2(t)
	r := newReader(t, Config{Root: root})
	if m := readOnce(t, r, t0); len(m.Points) != 0 {
		t.Fatalf("points before kubelet made its tree: %+v", m.Points)
	}
	writeTree(t, root, v2Files(ctrDir(uid1, cid1), 1_000_000, 1))
	if m := readOnce(t, r, t0.Add(30*time.Second)); len(m.Points) != 0 {
		t.Errorf("a tree made after the last search is seen before the next one (a minute on): %+v", m.Points)
	}
	at := t0.Add(61 * time.Second)
	m := readOnce(t, r, at)
	checkPoints(t, m.Points, []profile.Point{
		cpuPoint(profile.ContainerCPUTime, 1, at, labels("container_id", cid1, "pod_uid", uid1)),
		memPoint(profile.ContainerMemoryUsage, 1, labels("container_id", cid1, "pod_uid", uid1)),
	})

	// The tree vanishes (kubelet restarted with another cgroup root): searched again at once.
	if err := os.RemoveAll(filepath.Join(root, "kubepods")); err != nil {
		t.Fatal(err)
	}
	readOnce(t, r, at.Add(time.Second))
	writeTree(t, root, v2Files("kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod"+uid2U+".slice/cri-containerd-"+cid2+".scope", 2_000_000, 2))
	at = at.Add(2 * time.Second)
	m = readOnce(t, r, at)
	checkPoints(t, m.Points, []profile.Point{
		cpuPoint(profile.ContainerCPUTime, 2, at, labels("container_id", cid2, "pod_uid", uid2)),
		memPoint(profile.ContainerMemoryUsage, 2, labels("container_id", cid2, "pod_uid", uid2)),
	})
}

func TestReadingLabelsAndExtra(t *testing.T) {
	root := cgroupfsV2(t)
	writeTree(t, root, map[string]string{podDir(uid1) + "/memory.current": "4096\n"})
	cfgLabels := map[string]string{"node": "n1"}
	var extraAt []time.Time
	var r *Reader
	r = newReader(t, Config{Root: root, Labels: cfgLabels, Extra: func(now time.Time) []profile.Point {
		extraAt = append(extraAt, now)
		// The agent's counters may include the reader's own: no deadlock.
		return []profile.Point{{Name: profile.AgentSamples, Kind: profile.Counter, Unit: "{sample}", Value: float64(40 + r.Stats().Readings), Start: t0}}
	}})
	m := readOnce(t, r, t0)
	checkPoints(t, m.Points, []profile.Point{
		memPoint(profile.PodMemoryUsage, 4096, labels("pod_uid", uid1)),
		{Name: profile.AgentSamples, Kind: profile.Counter, Unit: "{sample}", Value: 41, Start: t0},
	})
	if !slices.Equal(extraAt, []time.Time{t0}) {
		t.Errorf("Extra called at %v, want once at %s", extraAt, t0)
	}
	m.Labels["node"] = "changed by a consumer"
	if m2 := readOnce(t, r, t0.Add(time.Second)); m2.Labels["node"] != "n1" || cfgLabels["node"] != "n1" {
		t.Errorf("a consumer changing a reading's labels changed the next reading's (%v) or the config's (%v)", m2.Labels, cfgLabels)
	}
}

func TestPodNamesFromTheAttributor(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: uid1},
		Spec:       corev1.PodSpec{NodeName: "n1"},
		Status: corev1.PodStatus{
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ContainerID: "containerd://" + cid1}},
		},
	}
	a, err := attribute.New(attribute.Config{Client: fake.NewClientset(pod), NodeName: "n1", Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	if err := a.WaitForCacheSync(t.Context()); err != nil {
		t.Fatal(err)
	}
	root := cgroupfsV2(t)
	writeTree(t, root, merge(v2Files(systemdPod1, 3_000_000, 3), v2Files(systemdPod1+"/cri-containerd-"+cid1+".scope", 2_000_000, 2)))
	r := newReader(t, Config{Root: root, Pods: a})
	m := readOnce(t, r, t0)
	checkPoints(t, m.Points, concat(
		podPoints(uid1, 3, 3, "pod", "web", "namespace", "shop"),
		containerPoints(uid1, cid1, 2, 2, "pod", "web", "namespace", "shop", "container", "app"),
	))
}
