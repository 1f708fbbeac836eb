//go:build linux

package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PodCgroup is the cgroup of a kwok pod's first container in this machine's real cgroup v1
// cpuacct and memory hierarchies, laid out as kubelet's cgroupfs driver does
// (<top>/kubepods/burstable/pod<UID>/<container ID>) below a unique top directory, as kind
// nests them. A process moved into it is that container to the node agent: its samples are
// attributed to the pod, its CPU and memory are the container's usage.
type PodCgroup struct {
	// ContainerID is the 64-hex ID the pod's status lists (containerd://<ID>).
	ContainerID string
	procs       []string // cgroup.procs of each hierarchy
}

// CgroupV1Mounts returns the mount points of the cgroup v1 cpuacct and memory hierarchies,
// which must be below /sys/fs/cgroup (the agent's default cgroup root); it fails t when they
// are not.
func CgroupV1Mounts(t testing.TB) (cpuMnt, memMnt string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line) // device mountpoint fstype options ...
		if len(f) < 4 || f[2] != "cgroup" {
			continue
		}
		for _, opt := range strings.Split(f[3], ",") {
			switch {
			case opt == "cpuacct" && cpuMnt == "":
				cpuMnt = f[1]
			case opt == "memory" && memMnt == "":
				memMnt = f[1]
			}
		}
	}
	if cpuMnt == "" || memMnt == "" || filepath.Dir(cpuMnt) != "/sys/fs/cgroup" || filepath.Dir(memMnt) != "/sys/fs/cgroup" {
		t.Fatalf("testenv: cgroup v1 cpuacct (%q) and memory (%q) hierarchies must be mounted in /sys/fs/cgroup (root needed)", cpuMnt, memMnt)
	}
	return cpuMnt, memMnt
}

// Kubepods creates the node's kubepods tree (<top>/kubepods/burstable, top unique to this
// cluster) in the cgroup v1 cpuacct and memory hierarchies, once per cluster; NewPodCgroup
// puts the pods' cgroups below it. Call it before starting a node agent: the agent looks for
// kubepods trees when it starts and then once a minute, as kubelet makes one per node and
// keeps it. The tree is removed when t ends.
func (c *Cluster) Kubepods(t testing.TB) {
	t.Helper()
	c.cgMu.Lock()
	defer c.cgMu.Unlock()
	if c.cgBurstable != nil {
		return
	}
	cpuMnt, memMnt := CgroupV1Mounts(t)
	top := "kprof-test-" + randomHex(t, 12)
	for _, mnt := range []string{cpuMnt, memMnt} {
		dir := filepath.Join(mnt, top, "kubepods", "burstable")
		MakeCgroup(t, filepath.Join(mnt, top), dir)
		c.cgBurstable = append(c.cgBurstable, dir)
	}
}

// NewPodCgroup gives the pod's first container a container ID in its status (as kubelet
// posts it; kwok leaves it empty) and creates that container's cgroups below the node's
// kubepods tree (Kubepods). They are removed when t ends; register the processes moved in
// (Move) after this call, so that they are killed first.
func (c *Cluster) NewPodCgroup(t testing.TB, pod *corev1.Pod) *PodCgroup {
	t.Helper()
	c.Kubepods(t)
	cid := randomHex(t, 64)
	c.setContainerID(t, pod, cid)
	cg := &PodCgroup{ContainerID: cid}
	c.cgMu.Lock()
	roots := c.cgBurstable
	c.cgMu.Unlock()
	for _, burstable := range roots {
		podDir := filepath.Join(burstable, "pod"+string(pod.UID))
		dir := filepath.Join(podDir, cid)
		MakeCgroup(t, podDir, dir)
		cg.procs = append(cg.procs, filepath.Join(dir, "cgroup.procs"))
	}
	return cg
}

// setContainerID sets the container ID of the pod's first container status.
func (c *Cluster) setContainerID(t testing.TB, pod *corev1.Pod, cid string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for attempt := 0; ; attempt++ {
		cur := &corev1.Pod{}
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(pod), cur); err != nil {
			t.Fatalf("testenv: get pod %s/%s: %v", pod.Namespace, pod.Name, err)
		}
		if len(cur.Status.ContainerStatuses) == 0 {
			t.Fatalf("testenv: pod %s/%s has no container status", pod.Namespace, pod.Name)
		}
		cur.Status.ContainerStatuses[0].ContainerID = "containerd://" + cid
		err := c.Client.Status().Update(ctx, cur)
		if err == nil {
			return
		}
		if attempt > 10 || ctx.Err() != nil {
			t.Fatalf("testenv: set the container ID of pod %s/%s: %v", pod.Namespace, pod.Name, err)
		}
	}
}

// Move moves process pid (all its threads) into the container's cgroups.
func (cg *PodCgroup) Move(t testing.TB, pid int) {
	t.Helper()
	for _, procs := range cg.procs {
		if err := os.WriteFile(procs, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatalf("testenv: move pid %d into %s: %v", pid, procs, err)
		}
	}
}

// Start runs script in a shell that first moves itself into the container's cgroups; it
// returns once the shell is in them. The shell and its children are killed when t ends.
func (cg *PodCgroup) Start(t testing.TB, script string) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `for p in "$@"; do echo $$ > "$p" || exit 2; done; echo ready; `+script, "sh")
	cmd.Args = append(cmd.Args, cg.procs...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %q: %v", script, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the shell and its children
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("testenv: %q did not move into its cgroups (%q, %v): %s", script, line, err, stderr.String())
	}
}

// MakeCgroup creates cgroup dir, and its parents up to top (which must be new), in a real
// cgroup hierarchy; when t ends they are removed, deepest first, retrying while killed
// processes are still leaving them. Kill the processes in them in cleanups registered after
// this call (they run first).
func MakeCgroup(t testing.TB, top, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("testenv: create cgroup %s: %v", dir, err)
	}
	t.Cleanup(func() { removeCgroupTree(t, top, dir) })
}

// removeCgroupTree removes dir and its parents up to top, deepest first, retrying while
// killed processes are still leaving.
func removeCgroupTree(t testing.TB, top, dir string) {
	for d := dir; ; d = filepath.Dir(d) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := os.Remove(d)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				t.Errorf("testenv: remove cgroup %s: %v", d, err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		if d == top {
			return
		}
	}
}

// randomHex returns n random hex digits.
func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)[:n]
}
