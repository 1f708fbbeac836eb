package docs

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/testenv"
)

// demoAddr is the address the documents' sample app listens on and the embedded default
// config profiles: `make demo`, the README's and the QUICKSTART's `sample-app ... &`.
const demoAddr = "127.0.0.1:6060"

// demoPortProblem returns an error naming addr, and the process holding it where /proc
// tells, when addr cannot be listened on or already answers; nil when it is free.
func demoPortProblem(addr string) error {
	inUse := false
	if l, err := net.Listen("tcp", addr); err != nil {
		inUse = true
	} else {
		_ = l.Close()
	}
	if !inUse {
		// Something may answer there without holding the exact address (another
		// network namespace's forward, a wildcard listener with SO_REUSEPORT).
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			inUse = true
		}
	}
	if !inUse {
		return nil
	}
	who := "another process"
	if p := listenerOf(addr); p != "" {
		who = p
	}
	return fmt.Errorf("%s is in use by %s; make demo and the documents' sample-app need it "+
		"(the embedded default profiles that address): stop it (a sample-app left by an interrupted run, "+
		"or a service of this machine) and run the test again", addr, who)
}

// listenerOf names the process listening on addr ("pid 123 (sample-app)") from
// /proc/net/tcp{,6} and the processes' socket file descriptors, or "" when it cannot
// tell (another network namespace, no permission).
func listenerOf(addr string) string {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return ""
	}
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			i := strings.LastIndexByte(fields[1], ':')
			if i < 0 {
				continue
			}
			if p, err := strconv.ParseUint(fields[1][i+1:], 16, 16); err == nil && int(p) == port {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
		_ = f.Close()
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, proc := range procs {
		fds, _ := os.ReadDir(filepath.Join(proc, "fd"))
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(proc, "fd", fd.Name()))
			if err != nil || !inodes[link] {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join(proc, "comm"))
			return fmt.Sprintf("pid %s (%s)", filepath.Base(proc), strings.TrimSpace(string(comm)))
		}
	}
	return ""
}

// TestDemoPortInUseIsNamed occupies 127.0.0.1:6060 and checks that both the documents'
// test (before it starts a session) and `make demo` (hack/demo.sh) stop with an error
// naming the port, instead of failing later with an unrelated one.
func TestDemoPortInUseIsNamed(t *testing.T) {
	l, err := net.Listen("tcp", demoAddr)
	if err != nil {
		t.Fatalf("occupy %s: %v (another process holds it: that is what this test simulates, but it needs the port to itself)", demoAddr, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() { // answer connects, as a real server would
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()

	t.Run("the documents' test names the port and the process", func(t *testing.T) {
		err := demoPortProblem(demoAddr)
		if err == nil {
			t.Fatalf("demoPortProblem(%s) = nil while this test listens there", demoAddr)
		}
		t.Logf("error: %v", err)
		want := fmt.Sprintf("%s is in use by pid %d (", demoAddr, os.Getpid())
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "make demo") {
			t.Errorf("error %q\n\tdoes not name the port, this process (%q) and make demo", err, want)
		}
	})

	t.Run("make demo says the port is in use", func(t *testing.T) {
		// hack/demo.sh in a copy with stand-ins for the binaries: it must stop at the port
		// check, before it starts anything.
		root := testenv.RepoRoot()
		work := t.TempDir()
		for _, dir := range []string{"hack", "bin"} {
			if err := os.MkdirAll(filepath.Join(work, dir), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		script, err := os.ReadFile(filepath.Join(root, "hack", "demo.sh"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, "hack", "demo.sh"), script, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, bin := range []string{"kprof", "sample-app"} {
			stub := "#!/bin/sh\necho \"$0 must not run: the port is taken\" >&2\nexit 3\n"
			if err := os.WriteFile(filepath.Join(work, "bin", bin), []byte(stub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("bash", filepath.Join(work, "hack", "demo.sh"))
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("hack/demo.sh succeeded while %s is taken:\n%s", demoAddr, out)
		}
		if !strings.Contains(string(out), demoAddr+" is in use by another process") || strings.Contains(string(out), "must not run") {
			t.Errorf("hack/demo.sh's output does not say %s is in use (or it went on):\n%s", demoAddr, out)
		}
	})
}
