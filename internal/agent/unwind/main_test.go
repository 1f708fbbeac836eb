package unwind

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The system files the tests and benchmarks read.
const (
	libcPath   = "/usr/lib/x86_64-linux-gnu/libc.so.6"
	pythonPath = "/usr/bin/python3.11"
)

// buildDir holds the programs the tests compile, once per test process (so
// that -count=20 compiles them once).
var buildDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kprof-unwind-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var built sync.Map // name → *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// compile builds the program name once per process with the command that
// run gives for an output path, and returns the output path.
func compile(t testing.TB, name string, run func(out string) *exec.Cmd) string {
	t.Helper()
	v, _ := built.LoadOrStore(name, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() {
		out := filepath.Join(buildDir, name)
		cmd := run(out)
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%v: %w\n%s", cmd.Args, err, msg)
			return
		}
		b.path = out
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// needTool fails the test when a program it runs is missing (gcc, readelf: binutils;
// hack/install-tools.sh installs them): a skipped test is not a passing one.
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (apt-get install -y gcc binutils): %v", name, err)
	}
}

// needFile fails the test when a system file it reads is missing (libc, Debian's python3).
func needFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is not on this machine (apt-get install -y python3): %v", path, err)
	}
}

// cProgram compiles testdata/frames.c with gcc and the given flags.
func cProgram(t testing.TB, name string, flags ...string) string {
	needTool(t, "gcc")
	src, err := filepath.Abs("testdata/frames.c")
	if err != nil {
		t.Fatal(err)
	}
	return compile(t, name, func(out string) *exec.Cmd {
		args := append(append([]string{}, flags...), "-o", out, src)
		return exec.Command("gcc", args...)
	})
}

// lookup is the row of t that covers pc (CFANone outside the table).
func lookup(t *Table, pc uint64) Row {
	if pc >= t.End {
		return Row{PC: pc}
	}
	lo, hi := 0, len(t.Rows)
	for lo < hi {
		m := (lo + hi) / 2
		if t.Rows[m].PC <= pc {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return Row{PC: pc}
	}
	return t.Rows[lo-1]
}
