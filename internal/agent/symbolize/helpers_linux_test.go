//go:build linux

package symbolize

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// binDir holds the target binaries, built once per test run (on first use) and shared.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "symbolize-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// targets are the test programs: how each is built.
var targets = map[string]struct {
	lang string   // "go" or "c"
	args []string // go build or gcc arguments
	// objcopy, when set, are objcopy arguments applied to the built file.
	objcopy []string
}{
	"go":          {"go", []string{"-ldflags=-X main.variant=plain"}, nil},
	"go-stripped": {"go", []string{"-ldflags=-s -w -X main.variant=stripped"}, nil},
	// Go before 1.26 has no .go.module section: without it the moduledata (which says
	// where the inline trees are) must be found by scanning the data sections.
	"go-stripped-no-module-section": {"go", []string{"-ldflags=-s -w -X main.variant=nomodule"}, []string{"--rename-section", ".go.module=.kprof.renamed"}},
	"go-pie":                        {"go", []string{"-buildmode=pie", "-ldflags=-X main.variant=pie"}, nil},
	"go-1":                          {"go", []string{"-ldflags=-X main.variant=1"}, nil},
	"go-2":                          {"go", []string{"-ldflags=-X main.variant=2"}, nil},
	"go-3":                          {"go", []string{"-ldflags=-X main.variant=3"}, nil},
	"c-pie":                         {"c", []string{"-O1", "-fno-omit-frame-pointer", "-pie", "-fPIE"}, nil},
	"c-nopie":                       {"c", []string{"-O1", "-fno-omit-frame-pointer", "-no-pie", "-fno-PIE"}, nil},
	"c-dynsym":                      {"c", []string{"-O1", "-fno-omit-frame-pointer", "-pie", "-fPIE", "-s", "-rdynamic"}, nil},
	// Static, so that it runs alone in a root of its own (startInRoot).
	"c-static": {"c", []string{"-O1", "-fno-omit-frame-pointer", "-static", "-Wl,--build-id"}, nil},
	// c-static-2 differs from c-static in its build ID only.
	"c-static-2": {"c", []string{"-O1", "-fno-omit-frame-pointer", "-static", "-Wl,--build-id", "-DKPROF_VARIANT=2"}, nil},
}

var (
	buildMu sync.Mutex
	built   = map[string]func() (string, error){}
)

// targetBinary returns the path of target name, building it on first use. It skips the test
// when the compiler is missing.
func targetBinary(t *testing.T, name string) string {
	t.Helper()
	tg, ok := targets[name]
	if !ok {
		t.Fatalf("no target %q", name)
	}
	tools := []string{"go"}
	if tg.lang == "c" {
		tools = []string{"gcc"}
	}
	if tg.objcopy != nil {
		tools = append(tools, "objcopy")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: cannot build the %s target (hack/install-tools.sh installs it)", tool, name)
		}
	}
	buildMu.Lock()
	f, ok := built[name]
	if !ok {
		f = sync.OnceValues(func() (string, error) { return build(name, tg.lang, tg.args, tg.objcopy) })
		built[name] = f
	}
	buildMu.Unlock()
	path, err := f()
	if err != nil {
		t.Fatalf("build target %s: %v", name, err)
	}
	return path
}

func build(name, lang string, args, objcopy []string) (string, error) {
	_, self, _, _ := runtime.Caller(0)
	testdata := filepath.Join(filepath.Dir(self), "testdata")
	out := filepath.Join(binDir, name)
	var cmd *exec.Cmd
	switch lang {
	case "go":
		src := filepath.Join(binDir, "src-"+name)
		if err := os.MkdirAll(src, 0o755); err != nil {
			return "", err
		}
		main, err := os.ReadFile(filepath.Join(testdata, "gotarget", "main.go"))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(src, "main.go"), main, 0o644); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module kproftarget\n\ngo 1.26\n"), 0o644); err != nil {
			return "", err
		}
		cmd = exec.Command("go", append(append([]string{"build", "-o", out}, args...), ".")...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	case "c":
		cmd = exec.Command("gcc", append(args, "-o", out, filepath.Join(testdata, "ctarget.c"))...)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", cmd, err, b)
	}
	if objcopy != nil {
		cmd := exec.Command("objcopy", append(objcopy, out)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s: %w\n%s", cmd, err, b)
		}
	}
	return out, nil
}

// targetLine is one line a target printed about itself: "<kind> <address>" and the
// frames there, innermost first: "<function>" for C targets, "<function> <file>
// <line>" triples for Go targets (what runtime.CallersFrames says).
type targetLine struct {
	kind   string
	addr   uint64
	frames []wantFrame
}

type wantFrame struct {
	fn   string
	file string
	line int
}

type target struct {
	name  string
	path  string
	pid   int32
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	lines []targetLine
}

// start runs the target and reads what it prints up to "ready"; the process is killed
// and reaped at the end of the test.
func start(t *testing.T, name string) *target {
	t.Helper()
	path := targetBinary(t, name)
	return startCmd(t, name, path, exec.Command(path))
}

// startCmd is start for a command set up by the caller; path is the executable as the
// process sees it.
func startCmd(t *testing.T, name, path string, cmd *exec.Cmd) *target {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	tg := &target{name: name, path: path, pid: int32(cmd.Process.Pid), cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() { tg.kill() })
	for {
		l, err := tg.readLine()
		if err != nil {
			t.Fatalf("%s: reading its report: %v", name, err)
		}
		if l.kind == "ready" {
			return tg
		}
		tg.lines = append(tg.lines, l)
	}
}

func (tg *target) readLine() (targetLine, error) {
	s, err := tg.out.ReadString('\n')
	if err != nil {
		return targetLine{}, err
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return targetLine{}, fmt.Errorf("empty line")
	}
	l := targetLine{kind: f[0]}
	if l.kind == "ready" {
		return l, nil
	}
	if len(f) < 3 {
		return l, fmt.Errorf("line %q: want kind, address and function", s)
	}
	if l.addr, err = strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64); err != nil {
		return l, fmt.Errorf("line %q: %w", s, err)
	}
	rest := f[2:]
	if len(rest) == 1 {
		l.frames = []wantFrame{{fn: rest[0]}}
		return l, nil
	}
	if len(rest)%3 != 0 {
		return l, fmt.Errorf("line %q: frames are not function, file, line triples", s)
	}
	for i := 0; i < len(rest); i += 3 {
		n, err := strconv.Atoi(rest[i+2])
		if err != nil {
			return l, fmt.Errorf("line %q: %w", s, err)
		}
		l.frames = append(l.frames, wantFrame{fn: rest[i], file: rest[i+1], line: n})
	}
	return l, nil
}

// report returns the lines of a kind, in order.
func (tg *target) report(kind string) []targetLine {
	var out []targetLine
	for _, l := range tg.lines {
		if l.kind == kind {
			out = append(out, l)
		}
	}
	return out
}

// kill ends the process and reaps it: afterwards its /proc entry is gone.
func (tg *target) kill() {
	if tg.cmd.ProcessState != nil {
		return
	}
	tg.stdin.Close()
	tg.cmd.Process.Kill()
	tg.cmd.Wait()
}

// gone tells whether /proc/PID no longer exists.
func gone(pid int32) bool {
	_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(int(pid))))
	return os.IsNotExist(err)
}

// startInRoot runs inside, a path within root, as a container runtime would: in a
// mount namespace of its own whose root is root (pivot_root), and with newPIDNS in a
// pid namespace of its own too, where it is pid 1. The target's pid is its pid on
// the host. It needs root.
func startInRoot(t *testing.T, name, root, inside string, newPIDNS bool) *target {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("a mount namespace and pivot_root need root: run the tests as root")
	}
	for _, tool := range []string{"unshare", "pivot_root", "mount", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: cannot make a container-like root", tool)
		}
	}
	args := []string{"--mount", "--propagation", "private"}
	if newPIDNS {
		args = append(args, "--pid", "--fork", "--kill-child")
	}
	script := `mount --bind "$1" "$1" && cd "$1" && mkdir -p .old && pivot_root . .old && exec ` + inside
	cmd := exec.Command("unshare", append(args, "sh", "-c", script, "sh", root)...)
	tg := startCmd(t, name, inside, cmd)
	if newPIDNS {
		// unshare forked the process that became pid 1 of the namespace.
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", tg.pid, tg.pid))
		f := strings.Fields(string(b))
		if err != nil || len(f) != 1 {
			t.Fatalf("children of unshare %d: %q, %v", tg.pid, b, err)
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatal(err)
		}
		tg.pid = int32(pid)
	}
	return tg
}
