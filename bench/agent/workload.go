//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// A workload is one busy process the profilers sample. marker is the function every
// complete stack of it passes through, as close to the outermost frame as its binary
// names: a profiler whose stacks of the workload contain it unwound them to the end.
type workload struct {
	name, marker  string
	framePointers bool
	cmd           func() *exec.Cmd
}

// A scenario keeps both CPUs busy with two workloads of one kind.
type scenario struct {
	name, desc string
	workloads  []workload
}

// cBusy is the C workload: four calls deep, none a tail call or inlined, so that every
// level is a frame a complete unwind must cross.
const cBusy = `#include <stdint.h>
static volatile uint64_t sink;
__attribute__((noinline)) static uint64_t level4(uint64_t x) {
	for (int i = 0; i < 1000; i++) x = x * 6364136223846793005ULL + 1;
	return x;
}
__attribute__((noinline)) static uint64_t level3(uint64_t x) { uint64_t r = level4(x); sink = r; return r ^ 3; }
__attribute__((noinline)) static uint64_t level2(uint64_t x) { uint64_t r = level3(x); sink = r; return r ^ 2; }
__attribute__((noinline)) static uint64_t level1(uint64_t x) { uint64_t r = level2(x); sink = r; return r ^ 1; }
int main(void) {
	uint64_t x = 1;
	for (;;) x = level1(x) + 1;
}
`

// pyBusy is the Python workload: a loop four Python calls deep in CPython 3.11, whose
// interpreter is built without frame pointers.
const pyBusy = `
def level4():
    x = 1
    while True:
        x = (x * 6364136223846793005 + 1) & 0xFFFFFFFFFFFFFFFF
def level3(): level4()
def level2(): level3()
def level1(): level2()
level1()
`

// goBusy is the Go workload, four calls deep. It is built with go build (this
// program, run by go run, has no .symtab: perf could not name its frames).
const goBusy = `package main

//go:noinline
func level4(x uint64) uint64 {
	for i := 0; i < 1000; i++ {
		x = x*6364136223846793005 + 1
	}
	return x
}

//go:noinline
func level3(x uint64) uint64 { return level4(x) ^ 3 }

//go:noinline
func level2(x uint64) uint64 { return level3(x) ^ 2 }

//go:noinline
func level1(x uint64) uint64 { return level2(x) ^ 1 }

var sink uint64

func main() {
	x := uint64(1)
	for {
		x = level1(x) + 1
		sink = x
	}
}
`

// buildGo builds goBusy in dir.
func buildGo(dir string) (string, error) {
	src := filepath.Join(dir, "gobusy")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(goBusy), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module gobusy\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "busy-go")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build of the Go workload: %w: %s", err, b)
	}
	return out, nil
}

const python = "/usr/bin/python3.11"

// scenarios builds the C workloads in dir and returns the scenarios named in names.
func scenarios(self, dir string, names []string) ([]scenario, error) {
	src := filepath.Join(dir, "busy.c")
	if err := os.WriteFile(src, []byte(cBusy), 0o644); err != nil {
		return nil, err
	}
	build := func(out string, flags ...string) (string, error) {
		path := filepath.Join(dir, out)
		args := append(append([]string{}, flags...), "-o", path, src)
		if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("gcc %s: %w: %s (hack/install-tools.sh installs gcc)", strings.Join(args, " "), err, b)
		}
		return path, nil
	}
	all := map[string]func() (scenario, error){
		"fp": func() (scenario, error) {
			c, err := build("busy-fp", "-O2", "-fno-omit-frame-pointer")
			if err != nil {
				return scenario{}, err
			}
			g, err := buildGo(dir)
			if err != nil {
				return scenario{}, err
			}
			return scenario{name: "fp", desc: "frame pointers: a Go busy loop + C -O2 -fno-omit-frame-pointer, 4 calls deep", workloads: []workload{
				{name: "go", marker: "main.main", framePointers: true, cmd: func() *exec.Cmd { return exec.Command(g) }},
				{name: "c-fp", marker: "main", framePointers: true, cmd: func() *exec.Cmd { return exec.Command(c) }},
			}}, nil
		},
		"nofp": func() (scenario, error) {
			c, err := build("busy-nofp", "-O2", "-fomit-frame-pointer")
			if err != nil {
				return scenario{}, err
			}
			if _, err := os.Stat(python); err != nil {
				return scenario{}, fmt.Errorf("the Python workload needs %s: %w", python, err)
			}
			return scenario{name: "nofp", desc: "no frame pointers: C -O2 -fomit-frame-pointer, 4 calls deep + python3.11, 4 Python calls deep", workloads: []workload{
				{name: "c-nofp", marker: "main", cmd: func() *exec.Cmd { return exec.Command(c) }},
				{name: "python3.11", marker: "Py_BytesMain", cmd: func() *exec.Cmd { return exec.Command(python, "-c", pyBusy) }},
			}}, nil
		},
	}
	var out []scenario
	for _, n := range names {
		f, ok := all[n]
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q (fp, nofp)", n)
		}
		sc, err := f()
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}
