//go:build linux

package agent

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// burnEnv, when set in the environment of this test binary, makes it a CPU
// burner: the value is the cgroup.procs file it moves itself into before it
// says "ready" and spins in flightHotLoop.
const burnEnv = "KPROF_AGENT_TEST_BURN"

// burnLifetime bounds a burner's life should the test die without killing it.
const burnLifetime = 5 * time.Minute

func TestMain(m *testing.M) {
	if procs := os.Getenv(burnEnv); procs != "" {
		os.Exit(burn(procs))
	}
	os.Exit(m.Run())
}

var burnSink uint64

// burn moves this process into the cgroup and spins in flightHotLoop until its
// parent is gone or burnLifetime has passed.
func burn(procs string) int {
	if err := os.WriteFile(procs, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "move burner into %s: %v\n", procs, err)
		return 2
	}
	fmt.Println("ready")
	parent, end := os.Getppid(), time.Now().Add(burnLifetime)
	for os.Getppid() == parent && time.Now().Before(end) {
		burnSink += flightHotLoop(5_000_000)
	}
	return 0
}

// flightHotLoop is the function the burner spends its CPU in: the profile
// fetched from the flight recorder must show it.
//
//go:noinline
func flightHotLoop(n int) uint64 {
	x := uint64(1)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

// startCgroupBurner creates a kubelet-style cgroup (cgroupfs driver) for a
// container of the pod with UID podUID below a unique top directory of the
// real cgroup v1 cpuacct hierarchy, starts a burner in it and returns its pid.
// Both are removed in t.Cleanup.
func startCgroupBurner(t *testing.T, podUID string) int {
	t.Helper()
	mnt := cpuacctMount(t)
	cid := randomHex(t, 64)
	top := filepath.Join(mnt, "kprof-flight-test-"+cid[:12])
	dir := filepath.Join(top, "kubepods", "burstable", "pod"+podUID, cid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create cgroup %s: %v", dir, err)
	}
	t.Cleanup(func() {
		for d := dir; ; d = filepath.Dir(d) {
			removeCgroup(t, d)
			if d == top {
				return
			}
		}
	})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), burnEnv+"="+filepath.Join(dir, "cgroup.procs"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start burner: %v", err)
	}
	// Registered after the cgroup's removal, so it runs before it.
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("burner did not get ready (%q, %v); stderr: %s", line, err, stderr.String())
	}
	return cmd.Process.Pid
}

// cpuacctMount is where the cgroup v1 cpuacct hierarchy is mounted.
func cpuacctMount(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line) // device mountpoint fstype options ...
		if len(f) >= 4 && f[2] == "cgroup" {
			for _, opt := range strings.Split(f[3], ",") {
				if opt == "cpuacct" {
					return f[1]
				}
			}
		}
	}
	t.Fatal("no cgroup v1 cpuacct hierarchy is mounted (/proc/self/mounts): this test moves a burner into a real pod cgroup")
	return ""
}

// removeCgroup removes an empty cgroup, retrying while a killed process is still leaving it.
func removeCgroup(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			t.Errorf("remove cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
