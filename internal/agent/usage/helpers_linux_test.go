//go:build linux

package usage

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

// burnEnv, when set in the environment of this test binary, makes it the CPU burner the
// real-cgroup tests run: the value lists the cgroup.procs files (colon-separated) it
// moves itself into before it allocates memory and burns CPU.
const burnEnv = "KPROF_USAGE_TEST_BURN"

// burnMemory is touched by the burner once in its cgroups, so that they are charged.
const burnMemory = 16 << 20

// burnLifetime bounds the burner's life should the test die without killing it.
const burnLifetime = 2 * time.Minute

func TestMain(m *testing.M) {
	if procs := os.Getenv(burnEnv); procs != "" {
		os.Exit(burn(filepath.SplitList(procs)))
	}
	os.Exit(m.Run())
}

var sink []byte

// burn moves this process into the cgroups, touches burnMemory bytes, says "ready" and
// spins until its parent is gone or burnLifetime has passed.
func burn(procs []string) int {
	pid := strconv.Itoa(os.Getpid())
	for _, p := range procs {
		if err := os.WriteFile(p, []byte(pid), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "move burner into %s: %v\n", p, err)
			return 2
		}
	}
	sink = make([]byte, burnMemory)
	for i := range sink {
		sink[i] = byte(i)
	}
	fmt.Println("ready")
	parent, end := os.Getppid(), time.Now().Add(burnLifetime)
	x := uint64(1)
	for {
		for i := 0; i < 1_000_000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		sink[x%burnMemory]++
		if os.Getppid() != parent || time.Now().After(end) {
			return 0
		}
	}
}

// startBurner starts the burner in the cgroups whose cgroup.procs files are given and
// waits until it is in them. It is killed in t.Cleanup.
func startBurner(t *testing.T, procs ...string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), burnEnv+"="+strings.Join(procs, string(filepath.ListSeparator)))
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
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("burner did not get ready (%q, %v); stderr: %s", line, err, stderr.String())
	}
	return cmd.Process.Pid
}

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on Linux).
const userHZ = 100

// procCPU returns the CPU time process pid used (utime+stime of all its threads), in seconds.
func procCPU(t *testing.T, pid int) float64 {
	t.Helper()
	f := statFields(t, fmt.Sprintf("/proc/%d/stat", pid))
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("parse /proc/%d/stat: %v", pid, err)
	}
	return float64(utime+stime) / userHZ
}

// statFields returns the fields of a /proc stat file after "(comm)": [0] is field 3, state.
func statFields(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		t.Fatalf("%s: no comm: %q", path, data)
	}
	return strings.Fields(string(data[i+1:]))
}

// signalAndWait sends sig to pid and waits until every thread of it is stopped (SIGSTOP) or
// none is (SIGCONT). The deadline bounds a hang; it asserts nothing about speed.
func signalAndWait(t *testing.T, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("kill -%d %d: %v", sig, pid, err)
	}
	wantStopped := sig == syscall.SIGSTOP
	deadline := time.Now().Add(30 * time.Second)
	for {
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
		if err != nil || len(tasks) == 0 {
			t.Fatalf("threads of pid %d: %v", pid, err)
		}
		done := true
		for _, task := range tasks {
			if stopped := statFields(t, task)[0] == "T"; stopped != wantStopped {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: threads not all in the state signal %d leads to", pid, sig)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// burnAtLeast lets the stopped burner run until it used at least seconds more CPU, then
// stops it again.
func burnAtLeast(t *testing.T, pid int, seconds float64) {
	t.Helper()
	want := procCPU(t, pid) + seconds
	signalAndWait(t, pid, syscall.SIGCONT)
	deadline := time.Now().Add(60 * time.Second) // bounds a hang on a busy machine only
	for procCPU(t, pid) < want {
		if time.Now().After(deadline) {
			t.Fatalf("burner pid %d did not use %gs of CPU", pid, seconds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	signalAndWait(t, pid, syscall.SIGSTOP)
}

// cgroupMounts returns the mount points of the cgroup2 hierarchy ("cgroup2") and of each
// v1 controller, from /proc/self/mounts.
func cgroupMounts(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line) // device mountpoint fstype options ...
		if len(f) < 4 {
			continue
		}
		switch f[2] {
		case "cgroup2":
			if _, ok := found["cgroup2"]; !ok {
				found["cgroup2"] = f[1]
			}
		case "cgroup":
			for _, opt := range strings.Split(f[3], ",") {
				if _, ok := found[opt]; !ok {
					found[opt] = f[1]
				}
			}
		}
	}
	return found
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
