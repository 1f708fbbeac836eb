package attribute

import (
	"strings"
	"testing"
)

const (
	cid    = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	nodeID = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	uid    = "6f2d1b0c-1e2f-4a3b-9c8d-7e6f5a4b3c2d"
	uidU   = "6f2d1b0c_1e2f_4a3b_9c8d_7e6f5a4b3c2d" // as the systemd driver writes it
)

// v1 repeats path on every controller line the way a v1 host shows it.
func v1(path string) string {
	var b strings.Builder
	for i, ctrl := range []string{"misc", "rdma", "pids", "hugetlb", "net_cls,net_prio", "perf_event", "cpuset", "memory", "freezer", "devices", "blkio", "cpu,cpuacct", "name=systemd"} {
		b.WriteString(strings.Join([]string{itoa(13 - i), ctrl, path}, ":"))
		b.WriteByte('\n')
	}
	b.WriteString("0::/\n")
	return b.String()
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return "1" + string(rune('0'+i-10))
}

// cutAtBound pads so that the bytes read end right after head.
func cutAtBound(head, tail string) string {
	return strings.Repeat("x", maxCgroupFile-len(head)-1) + "\n" + head + tail
}

func TestParseCgroup(t *testing.T) {
	systemdPod := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice"
	tests := []struct {
		name                    string
		data                    string
		wantID, wantRT, wantUID string
	}{
		// cgroup v1: one line per hierarchy.
		{"v1 systemd driver with containerd", v1(systemdPod + "/cri-containerd-" + cid + ".scope"), cid, RuntimeContainerd, uid},
		{"v1 systemd driver with CRI-O", v1(systemdPod + "/crio-" + cid + ".scope"), cid, RuntimeCRIO, uid},
		{"v1 systemd driver with Docker (cri-dockerd)", v1(systemdPod + "/docker-" + cid + ".scope"), cid, RuntimeDocker, uid},
		{"v1 cgroupfs driver burstable pod", v1("/kubepods/burstable/pod" + uid + "/" + cid), cid, "", uid},
		{"v1 cgroupfs driver guaranteed pod", v1("/kubepods/pod" + uid + "/" + cid), cid, "", uid},
		{"v1 cgroupfs driver with CRI-O", v1("/kubepods/besteffort/pod" + uid + "/crio-" + cid), cid, RuntimeCRIO, uid},
		{"v1 plain Docker", v1("/docker/" + cid), cid, RuntimeDocker, ""},
		{"v1 static pod with a config-hash UID", v1("/kubepods/burstable/pod0123456789abcdef0123456789abcdef/" + cid), cid, "", "0123456789abcdef0123456789abcdef"},
		{"v1 the first line naming a container wins over a pod-only line",
			"3:cpu:/kubepods/burstable/pod" + uid + "\n2:memory:/kubepods/burstable/pod" + uid + "/" + cid + "\n", cid, "", uid},
		{"v1 host service", v1("/system.slice/containerd.service"), "", "", ""},

		// cgroup v2: one "0::" line.
		{"v2 systemd driver with containerd", "0::" + systemdPod + "/cri-containerd-" + cid + ".scope\n", cid, RuntimeContainerd, uid},
		{"v2 systemd driver with CRI-O", "0::" + systemdPod + "/crio-" + cid + ".scope\n", cid, RuntimeCRIO, uid},
		{"v2 CRI-O container sub-cgroup", "0::" + systemdPod + "/crio-" + cid + ".scope/container\n", cid, RuntimeCRIO, uid},
		{"v2 systemd driver with Docker", "0::" + systemdPod + "/docker-" + cid + ".scope\n", cid, RuntimeDocker, uid},
		{"v2 guaranteed pod slice", "0::/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope\n", cid, RuntimeContainerd, uid},
		{"v2 cgroupfs driver", "0::/kubepods/burstable/pod" + uid + "/" + cid + "\n", cid, "", uid},
		{"v2 Docker outside Kubernetes", "0::/system.slice/docker-" + cid + ".scope\n", cid, RuntimeDocker, ""},
		{"v2 without trailing newline", "0::/kubepods/pod" + uid + "/" + cid, cid, "", uid},
		{"v2 CRI-O conmon is in the pod but no container", "0::" + systemdPod + "/crio-conmon-" + cid + ".scope\n", "", "", uid},

		// Nesting and cgroup namespaces.
		{"kind v2: the pod container inside the node container wins",
			"0::/system.slice/docker-" + nodeID + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope\n",
			cid, RuntimeContainerd, uid},
		{"kind v1 cgroupfs under /docker/<node>/kubelet", v1("/docker/" + nodeID + "/kubelet/kubepods/burstable/pod" + uid + "/" + cid), cid, "", uid},
		{"k3s in Docker: the node's own kubelet belongs to the node container", "0::/docker/" + nodeID + "/kubelet\n", nodeID, RuntimeDocker, ""},
		{"v2 seen from a cgroup namespace with /../ escapes",
			"0::/../../kubepods-burstable.slice/kubepods-burstable-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope\n", cid, RuntimeContainerd, uid},
		{"v2 cgroupfs path with /../ escapes", "0::/../../../kubepods/burstable/pod" + uid + "/" + cid + "\n", cid, "", uid},

		// Host processes and garbage.
		{"v2 host process in a user session", "0::/user.slice/user-1000.slice/session-3.scope\n", "", "", ""},
		{"v2 root cgroup (private cgroup namespace)", "0::/\n", "", "", ""},
		{"empty file", "", "", "", ""},
		{"garbage", "not a cgroup file\n\x00\xff::::\n::\n:\n", "", "", ""},
		{"63 hex digits is not a container", "0::/docker/" + cid[1:] + "\n", "", "", ""},
		{"upper-case hex is not a container", "0::/docker/" + strings.ToUpper(cid) + "\n", "", "", ""},
		{"a plain hex name with .scope is not a container", "0::/system.slice/" + cid + ".scope\n", "", "", ""},
		{"a pod UID that is not a UUID is not a pod", "0::/kubepods/burstable/podnot-a-uid/" + cid + "\n", cid, "", ""},

		// Bounds.
		{"a container after the first 64 KiB is not read",
			strings.Repeat("9:x:/junk\n", maxCgroupFile/10+1) + "0::/docker/" + cid + "\n", "", "", ""},
		{"a container before 10 MiB of junk is found",
			"0::/docker/" + cid + "\n" + strings.Repeat("j", 10<<20), cid, RuntimeDocker, ""},
		{"one 1 MiB line without newline", strings.Repeat("0::/docker/"+cid, (1<<20)/75), "", "", ""},
		{"a line longer than PATH_MAX is skipped", "0::/" + strings.Repeat("a/", maxCgroupLine) + "docker/" + cid + "\n", "", "", ""},
		{"the line cut at 64 KiB is not parsed as the shorter path it was cut to", cutAtBound("0::/docker/"+nodeID+"/kub", "elet/kubepods/pod"+uid+"/"+cid+"\n"), "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, rt, pod := ParseCgroup([]byte(tt.data))
			if id != tt.wantID || rt != tt.wantRT || pod != tt.wantUID {
				t.Errorf("ParseCgroup() = (%q, %q, %q), want (%q, %q, %q)", id, rt, pod, tt.wantID, tt.wantRT, tt.wantUID)
			}
		})
	}
}
