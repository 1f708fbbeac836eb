//go:build linux

package attribute

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
)

// A fake proc tree shows what a real /proc cannot be made to show on demand: a cgroup
// file past the size bound, a kernel thread's missing exe, a pid that is surely gone.
type fakeProc struct {
	comm, cgroup, exe string // exe "" = no exe link
}

func writeProcRoot(t *testing.T, procs map[int32]fakeProc) string {
	t.Helper()
	root := t.TempDir()
	for pid, p := range procs {
		writeProc(t, root, pid, p)
	}
	return root
}

func writeProc(t *testing.T, root string, pid int32, p fakeProc) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(int(pid)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"comm": p.comm + "\n", "cgroup": p.cgroup} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "exe")
	_ = os.Remove(exe)
	if p.exe != "" {
		if err := os.Symlink(p.exe, exe); err != nil {
			t.Fatal(err)
		}
	}
}

func newAttributor(t *testing.T, cfg Config) *Attributor {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestProcessReadsProcRoot(t *testing.T) {
	root := writeProcRoot(t, map[int32]fakeProc{
		10: {comm: "app", exe: "/usr/bin/app", cgroup: "0::/kubepods.slice/kubepods-pod" + uidU + ".slice/cri-containerd-" + cid + ".scope\n"},
		11: {comm: "kworker/0:1", cgroup: "0::/\n"},
		12: {comm: "big", exe: "/bin/big", cgroup: strings.Repeat("1:x:/junk\n", 1<<20) + "0::/docker/" + cid + "\n"},
		13: {comm: "old", exe: "/usr/bin/old (deleted)", cgroup: "0::/system.slice/docker-" + cid + ".scope\n"},
	})
	a := newAttributor(t, Config{ProcRoot: root})
	tests := []struct {
		name    string
		pid     int32
		want    Process
		wantErr error
	}{
		{"a v2 containerd process", 10, Process{PID: 10, Comm: "app", Exe: "/usr/bin/app", ContainerID: cid, Runtime: RuntimeContainerd, PodUID: uid}, nil},
		{"a kernel thread has no exe and no container", 11, Process{PID: 11, Comm: "kworker/0:1"}, nil},
		{"a container line past the cgroup file bound is not read", 12, Process{PID: 12, Comm: "big", Exe: "/bin/big"}, nil},
		{"a replaced executable keeps the kernel's suffix", 13, Process{PID: 13, Comm: "old", Exe: "/usr/bin/old (deleted)", ContainerID: cid, Runtime: RuntimeDocker}, nil},
		{"a vanished pid is an error", 99, Process{}, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.Process(tt.pid)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("Process(%d) = %+v, %v; want %+v, %v", tt.pid, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestLabelsWithoutCluster(t *testing.T) {
	root := writeProcRoot(t, map[int32]fakeProc{
		10: {comm: "app", exe: "/usr/bin/app", cgroup: "0::/kubepods/burstable/pod" + uid + "/" + cid + "\n"},
		11: {comm: "sshd", exe: "/usr/sbin/sshd", cgroup: "0::/system.slice/ssh.service\n"},
	})
	a := newAttributor(t, Config{ProcRoot: root})
	tests := []struct {
		name string
		pid  int32
		want map[string]string
	}{
		{"a container process has no pod labels without a cluster", 10, map[string]string{"pid": "10", "comm": "app", "exe": "/usr/bin/app", "container_id": cid}},
		{"a host process has no container_id", 11, map[string]string{"pid": "11", "comm": "sshd", "exe": "/usr/sbin/sshd"}},
		{"a vanished pid has its pid only", 99, map[string]string{"pid": "99"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := a.Labels(tt.pid); !maps.Equal(got, tt.want) {
				t.Errorf("Labels(%d) = %v, want %v", tt.pid, got, tt.want)
			}
		})
	}
}

func TestProcessCache(t *testing.T) {
	tests := []struct {
		name      string
		cacheSize int
		age       time.Duration // how long after the first read pid 1 is read again
		wantComm  string
	}{
		{"a recent read is served from the cache", 2, 0, "before"},
		{"the least recently used pid is evicted past the bound", 1, 0, "after"},
		{"an entry older than the TTL is read again", 2, time.Minute, "after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeProcRoot(t, map[int32]fakeProc{1: {comm: "before"}, 2: {comm: "other"}})
			a := newAttributor(t, Config{ProcRoot: root, CacheSize: tt.cacheSize, CacheTTL: 30 * time.Second})
			now := time.Unix(1_000_000, 0)
			a.procs.now = func() time.Time { return now }
			for _, pid := range []int32{1, 2} {
				if _, err := a.Process(pid); err != nil {
					t.Fatal(err)
				}
			}
			if n := a.procs.len(); n > tt.cacheSize {
				t.Errorf("cache holds %d processes, bound is %d", n, tt.cacheSize)
			}
			writeProc(t, root, 1, fakeProc{comm: "after"})
			now = now.Add(tt.age)
			p, err := a.Process(1)
			if err != nil || p.Comm != tt.wantComm {
				t.Errorf("Process(1) = %+v, %v; want comm %q", p, err, tt.wantComm)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	client := fake.NewClientset()
	tests := []struct {
		name      string
		cfg       Config
		wantField string // "" = valid
	}{
		{"zero config is valid", Config{}, ""},
		{"a client with a node name is valid", Config{Client: client, NodeName: "node-1"}, ""},
		{"a client without node name names NodeName", Config{Client: client}, "NodeName"},
		{"a negative resync period names ResyncPeriod", Config{ResyncPeriod: -time.Second}, "ResyncPeriod"},
		{"a negative cache size names CacheSize", Config{CacheSize: -1}, "CacheSize"},
		{"a negative cache TTL names CacheTTL", Config{CacheTTL: -time.Second}, "CacheTTL"},
		{"a missing proc root names ProcRoot", Config{ProcRoot: "/nonexistent/proc"}, "ProcRoot"},
		{"a file as proc root names ProcRoot", Config{ProcRoot: "/proc/self/comm"}, "ProcRoot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			switch {
			case tt.wantField == "" && err != nil:
				t.Errorf("New() = %v, want no error", err)
			case tt.wantField != "" && (err == nil || !strings.Contains(err.Error(), tt.wantField+":")):
				t.Errorf("New() = %v, want an error naming %s", err, tt.wantField)
			}
		})
	}
}

// Start twice and Shutdown with a running informer: TestLabelsFromPodInformer.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	t.Run("Shutdown without Start is a no-op, twice", func(t *testing.T) {
		a := newAttributor(t, Config{Client: fake.NewClientset(), NodeName: "n"}) // never contacted
		for range 2 {
			if err := a.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Start(ctx); err == nil {
			t.Error("Start after Shutdown succeeded, want an error")
		}
	})
	t.Run("without a cluster there is nothing to start or sync", func(t *testing.T) {
		a := newAttributor(t, Config{})
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.WaitForCacheSync(ctx); err != nil {
			t.Fatal(err)
		}
		if err := a.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
