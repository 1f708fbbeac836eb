package usage

import (
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/kprof/kprof/internal/agent/profile"
)

// podPoints are the two points of a pod cgroup read at t0 for the first time.
func podPoints(uid string, cpu, mem float64, kv ...string) []profile.Point {
	l := labels(append([]string{"pod_uid", uid}, kv...)...)
	return []profile.Point{cpuPoint(profile.PodCPUTime, cpu, t0, l), memPoint(profile.PodMemoryUsage, mem, maps.Clone(l))}
}

// containerPoints are the two points of a container cgroup read at t0 for the first time.
func containerPoints(uid, cid string, cpu, mem float64, kv ...string) []profile.Point {
	l := labels(append([]string{"container_id", cid, "pod_uid", uid}, kv...)...)
	return []profile.Point{cpuPoint(profile.ContainerCPUTime, cpu, t0, l), memPoint(profile.ContainerMemoryUsage, mem, maps.Clone(l))}
}

func concat(ps ...[]profile.Point) []profile.Point {
	var out []profile.Point
	for _, p := range ps {
		out = append(out, p...)
	}
	return out
}

const (
	systemdPod1 = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid1U + ".slice"
	systemdPod2 = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uid2U + ".slice"
)

var webLabels = []string{"pod", "web", "namespace", "shop"}

func TestReadOnceLayouts(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		links    map[string]string // symlink name → target, in root
		wantKind string
		want     []profile.Point
	}{
		{
			name: "v2 systemd driver with containerd, a pause container and an unknown pod",
			files: merge(
				map[string]string{"cgroup.controllers": "cpuset cpu io memory pids\n"},
				v2Files("system.slice/containerd.service", 9e6, 9e6), // host service: not read
				v2Files("kubepods.slice", 8e6, 8e6),
				v2Files("kubepods.slice/kubepods-burstable.slice", 7e6, 7e6),
				v2Files(systemdPod1, 3_000_000, 3<<20),
				v2Files(systemdPod1+"/cri-containerd-"+cid1+".scope", 2_500_000, 2<<20),
				v2Files(systemdPod1+"/cri-containerd-"+cid3+".scope", 1000, 4096), // the sandbox: not in the pod's statuses
				v2Files(systemdPod2, 500_000, 1<<20),
				v2Files(systemdPod2+"/cri-containerd-"+cid2+".scope", 250_000, 512<<10),
			),
			wantKind: layoutV2,
			want: concat(
				// Pods by UID (uid2 sorts first), each followed by its containers by ID.
				podPoints(uid2, 0.5, 1<<20),
				containerPoints(uid2, cid2, 0.25, 512<<10),
				podPoints(uid1, 3, 3<<20, webLabels...),
				containerPoints(uid1, cid1, 2.5, 2<<20, append(webLabels, "container", "app")...),
				containerPoints(uid1, cid3, 0.001, 4096, webLabels...),
			),
		},
		{
			name: "v2 cgroupfs driver with burstable and guaranteed pods",
			files: merge(
				map[string]string{"cgroup.controllers": "cpu memory\n"},
				v2Files("kubepods/burstable/pod"+uid1, 3_000_000, 3<<20),
				v2Files("kubepods/burstable/pod"+uid1+"/"+cid1, 2_000_000, 2<<20),
				v2Files("kubepods/pod"+uid2, 1_000_000, 1<<20),
				v2Files("kubepods/pod"+uid2+"/"+cid2, 1_000_000, 1<<20),
			),
			wantKind: layoutV2,
			want: concat(
				podPoints(uid2, 1, 1<<20),
				containerPoints(uid2, cid2, 1, 1<<20),
				podPoints(uid1, 3, 3<<20, webLabels...),
				containerPoints(uid1, cid1, 2, 2<<20, append(webLabels, "container", "app")...),
			),
		},
		{
			name: "v1 cgroupfs driver with cpu,cpuacct co-mounted and linked as cpu and cpuacct",
			files: merge(
				v1Files("cpu,cpuacct", "memory", "kubepods/besteffort/pod"+uid1, 3e9, 3<<20),
				v1Files("cpu,cpuacct", "memory", "kubepods/besteffort/pod"+uid1+"/"+cid1, 2.5e9, 2<<20),
				v1Files("cpu,cpuacct", "memory", "user.slice", 9e9, 9<<20),
				map[string]string{"pids/kubepods/besteffort/pod" + uid1 + "/" + cid1 + "/pids.current": "3\n"},
			),
			links:    map[string]string{"cpu": "cpu,cpuacct", "cpuacct": "cpu,cpuacct"},
			wantKind: layoutV1,
			want: concat(
				podPoints(uid1, 3, 3<<20, webLabels...),
				containerPoints(uid1, cid1, 2.5, 2<<20, append(webLabels, "container", "app")...),
			),
		},
		{
			name: "v1 systemd driver with cri-dockerd in a hybrid layout reads the v1 hierarchies",
			files: merge(
				v1Files("cpuacct", "memory", systemdPod1, 3e9, 3<<20),
				v1Files("cpuacct", "memory", systemdPod1+"/docker-"+cid1+".scope", 2e9, 2<<20),
				map[string]string{"cpu/" + systemdPod1 + "/cpu.shares": "1024\n"},
				map[string]string{"unified/cgroup.controllers": ""},
				v2Files("unified/"+systemdPod1, 7_000_000, 7<<20), // no controllers there: ignored
			),
			wantKind: layoutHybrid,
			want: concat(
				podPoints(uid1, 3, 3<<20, webLabels...),
				containerPoints(uid1, cid1, 2, 2<<20, append(webLabels, "container", "app")...),
			),
		},
		{
			name: "hybrid without a v1 cpuacct hierarchy takes CPU from the unified one",
			files: merge(
				map[string]string{"memory/" + systemdPod1 + "/memory.usage_in_bytes": "3145728\n"},
				map[string]string{"unified/cgroup.controllers": ""},
				map[string]string{"unified/" + systemdPod1 + "/cpu.stat": "usage_usec 3000000\n"},
			),
			wantKind: layoutHybrid,
			want:     podPoints(uid1, 3, 3<<20, webLabels...),
		},
		{
			name: "v1 trees at different depths in the cpuacct and memory hierarchies are joined by pod UID and container ID",
			files: merge(
				map[string]string{
					"cpuacct/kubepods/pod" + uid1 + "/cpuacct.usage":                                  "3000000000\n",
					"cpuacct/kubepods/pod" + uid1 + "/" + cid1 + "/cpuacct.usage":                     "2000000000\n",
					"memory/jobs/sandbox/kubepods/pod" + uid1 + "/memory.usage_in_bytes":              "3145728\n",
					"memory/jobs/sandbox/kubepods/pod" + uid1 + "/" + cid1 + "/memory.usage_in_bytes": "2097152\n",
					"memory/jobs/sandbox/kubepods/pod" + uid1 + "/" + cid2 + "/memory.usage_in_bytes": "1048576\n",
				},
			),
			wantKind: layoutV1,
			want: concat(
				podPoints(uid1, 3, 3<<20, webLabels...),
				containerPoints(uid1, cid1, 2, 2<<20, append(webLabels, "container", "app")...),
				// cid2 has no cpuacct cgroup: memory only.
				[]profile.Point{memPoint(profile.ContainerMemoryUsage, 1<<20, labels(append([]string{"container_id", cid2, "pod_uid", uid1}, webLabels...)...))},
			),
		},
		{
			name: "v2 CRI-O: the container scope counts its container sub-cgroup; conmon is neither pod nor container",
			files: merge(
				map[string]string{"cgroup.controllers": "cpu memory\n"},
				v2Files("kubepods.slice/kubepods-pod"+uid1U+".slice", 3_000_000, 3<<20),
				v2Files("kubepods.slice/kubepods-pod"+uid1U+".slice/crio-"+cid1+".scope", 2_000_000, 2<<20),
				v2Files("kubepods.slice/kubepods-pod"+uid1U+".slice/crio-"+cid1+".scope/container", 1_900_000, 1<<20),
				v2Files("kubepods.slice/kubepods-pod"+uid1U+".slice/crio-conmon-"+cid1+".scope", 100_000, 4096),
			),
			wantKind: layoutV2,
			want: concat(
				podPoints(uid1, 3, 3<<20, webLabels...),
				containerPoints(uid1, cid1, 2, 2<<20, append(webLabels, "container", "app")...),
			),
		},
		{
			name: "kind v2: the pods of a node container nested under the host's systemd",
			files: merge(
				map[string]string{"cgroup.controllers": "cpu memory\n"},
				v2Files("system.slice/docker-"+node+".scope", 9e6, 9<<20),
				v2Files("system.slice/docker-"+node+".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod"+uid1U+".slice", 3_000_000, 3<<20),
				v2Files("system.slice/docker-"+node+".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod"+uid1U+".slice/cri-containerd-"+cid1+".scope", 2_000_000, 2<<20),
			),
			wantKind: layoutV2,
			want: concat(
				podPoints(uid1, 3, 3<<20, webLabels...),
				containerPoints(uid1, cid1, 2, 2<<20, append(webLabels, "container", "app")...),
			),
		},
		{
			name: "kind v1: cgroupfs driver under docker/<node>/kubelet, the node ID is no container of the pod",
			files: merge(
				v1Files("cpu,cpuacct", "memory", "docker/"+node, 9e9, 9<<20),
				v1Files("cpu,cpuacct", "memory", "docker/"+node+"/kubelet/kubepods/burstable/pod"+uid1, 3e9, 3<<20),
				v1Files("cpu,cpuacct", "memory", "docker/"+node+"/kubelet/kubepods/burstable/pod"+uid1+"/"+cid1, 2e9, 2<<20),
			),
			wantKind: layoutV1,
			want: concat(
				podPoints(uid1, 3, 3<<20, webLabels...),
				containerPoints(uid1, cid1, 2, 2<<20, append(webLabels, "container", "app")...),
			),
		},
		{
			name: "a host without Kubernetes has no points",
			files: merge(
				map[string]string{"cgroup.controllers": "cpu memory\n"},
				v2Files("system.slice/docker-"+cid1+".scope", 9e6, 9<<20),
				v2Files("user.slice/user-1000.slice", 9e6, 9<<20),
			),
			wantKind: layoutV2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tt.files)
			for name, target := range tt.links {
				if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
					t.Fatal(err)
				}
			}
			l, err := detectLayout(root)
			if err != nil || l.kind != tt.wantKind {
				t.Fatalf("detectLayout() = %+v, %v; want kind %s", l, err, tt.wantKind)
			}
			r := newReader(t, Config{Root: root, Pods: webPods, Labels: map[string]string{"node": "n1", "cluster": "c1"}})
			m := readOnce(t, r, t0)
			if !m.Time.Equal(t0) || !maps.Equal(m.Labels, map[string]string{"node": "n1", "cluster": "c1"}) {
				t.Errorf("reading Time %s, Labels %v; want %s, node=n1 cluster=c1", m.Time, m.Labels, t0)
			}
			checkPoints(t, m.Points, tt.want)
			if s := r.Stats(); s != (Stats{Readings: 1}) {
				t.Errorf("Stats() = %+v, want one reading without trouble", s)
			}
		})
	}
}

func TestDetectLayoutWithoutHierarchies(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "pids", "devices")
	r := newReader(t, Config{Root: root})
	if m, err := r.ReadOnce(t0); err == nil {
		t.Fatalf("ReadOnce() under a root without cpuacct, memory or cgroup.controllers = %+v, want an error", m)
	}
}
