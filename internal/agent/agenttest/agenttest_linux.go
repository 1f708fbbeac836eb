//go:build linux

// Package agenttest holds helpers for the node agent's tests that run real processes.
package agenttest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BusyProcess starts a shell spinning on one CPU until the test ends and returns its pid.
func BusyProcess(t testing.TB) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start busy loop: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// CPUTime returns the CPU time (user + system) process pid has used so far, from
// /proc/PID/stat.
func CPUTime(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read CPU time: %v", err)
	}
	// Fields after "(comm) ": state is field 3, utime 14, stime 15 (proc(5)).
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, err1 := strconv.ParseUint(fields[14-3], 10, 64)
	stime, err2 := strconv.ParseUint(fields[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("parse /proc/%d/stat: %v %v", pid, err1, err2)
	}
	const clkTck = 100 // USER_HZ on every Linux architecture kprof targets
	return time.Duration(utime+stime) * time.Second / clkTck
}
