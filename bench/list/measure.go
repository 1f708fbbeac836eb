package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// gnuTime reports a command's peak RSS. The rusage of a child that this process
// starts cannot: os/exec starts it with vfork (CLONE_VM), so on exec Linux folds the
// high-water RSS of the parent's memory, this benchmark's, into the child's
// ru_maxrss. GNU time starts the command with fork from a process of about 1 MiB.
const gnuTime = "/usr/bin/time"

// measure runs args with stdout on /dev/null and returns its wall time, CPU time
// (user + system, from wait4) and peak RSS in bytes (GNU time's %M). work is a
// directory for GNU time's report.
func measure(ctx context.Context, args, env []string, work string) (wall, cpu time.Duration, rss int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	report := filepath.Join(work, "rss")
	cmd := exec.CommandContext(ctx, gnuTime, append([]string{"-f", "%M", "-o", report, "--"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr, cmd.Env = &stderr, env // a nil Stdout is /dev/null
	// On timeout, kill the command too, not only GNU time.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, 0, fmt.Errorf("%w\n%s", err, stderr.String())
	}
	wall = time.Since(start)
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, 0, 0, errors.New("no rusage")
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	b, err := os.ReadFile(report)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read GNU time's report: %w", err)
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("GNU time's report %q: %w", b, err)
	}
	return wall, cpu, kib << 10, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// medianRatio is the median of a[i]/b[i]: runs of the same round ran next to each
// other, so their ratio is less exposed to the machine's drift.
func medianRatio(a, b []time.Duration) float64 {
	rs := make([]float64, len(a))
	for i := range a {
		rs[i] = float64(a[i]) / float64(b[i])
	}
	slices.Sort(rs)
	return rs[len(rs)/2]
}
