//go:build linux

package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kprof/kprof/internal/testenv"
)

// burnEnv, when set in the environment of this test binary, makes it a CPU
// burner: it says "ready" and spins in flightHotLoop.
const burnEnv = "KPROF_AGENT_TEST_BURN"

// burnLifetime bounds a burner's life should the test die without killing it.
const burnLifetime = 5 * time.Minute

func TestMain(m *testing.M) {
	if os.Getenv(burnEnv) != "" {
		os.Exit(burn())
	}
	os.Exit(m.Run())
}

var burnSink uint64

// burn spins in flightHotLoop until its parent is gone or burnLifetime has passed.
func burn() int {
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

// startCgroupBurner starts a burner in the real cgroup of pod's container
// (testenv's PodCgroup, kubelet's cgroupfs layout carrying the pod's UID) and
// returns its pid. It is killed before the cgroup is removed.
func startCgroupBurner(t *testing.T, cluster *testenv.Cluster, pod *corev1.Pod) int {
	t.Helper()
	cg := cluster.NewPodCgroup(t, pod)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), burnEnv+"=1")
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
		t.Fatalf("burner did not get ready (%q, %v); stderr: %s", line, err, stderr.String())
	}
	cg.Move(t, cmd.Process.Pid)
	return cmd.Process.Pid
}
