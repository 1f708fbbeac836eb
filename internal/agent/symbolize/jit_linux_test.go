//go:build linux

package symbolize

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

// perfMapLine is a line of a perf map as the test reads it, independently of the
// code under test.
type perfMapLine struct {
	start, size uint64
	name        string
}

func readPerfMapFile(t *testing.T, path string) []perfMapLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []perfMapLine
	for line := range strings.Lines(string(b)) {
		if !strings.HasSuffix(line, "\n") {
			break
		}
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 3)
		if len(f) != 3 {
			continue
		}
		start, err1 := strconv.ParseUint(f[0], 16, 64)
		size, err2 := strconv.ParseUint(f[1], 16, 64)
		if err1 == nil && err2 == nil {
			out = append(out, perfMapLine{start, size, f[2]})
		}
	}
	return out
}

// execRanges are the executable mappings of pid, read from its maps by the test.
func execRanges(t *testing.T, pid int32) [][2]uint64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][2]uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || !strings.Contains(fields[1], "x") {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		a, _ := strconv.ParseUint(lo, 16, 64)
		b, _ := strconv.ParseUint(hi, 16, 64)
		out = append(out, [2]uint64{a, b})
	}
	return out
}

func inRanges(rs [][2]uint64, a uint64) bool {
	for _, r := range rs {
		if a >= r[0] && a < r[1] {
			return true
		}
	}
	return false
}

// writeFile writes data to path, creating its directory.
func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, data string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// hostPerfMap is the perf map path of a process of the host's pid namespace; it is
// removed when the test ends (runtimes leave theirs behind).
func hostPerfMap(t *testing.T, pid int32) string {
	path := fmt.Sprintf("/tmp/perf-%d.map", pid)
	t.Cleanup(func() { os.Remove(path) })
	return path
}

// nodeHotLoop runs a hot loop in hotLoopKprof, keeping V8 compiling it; it prints
// "ready" and exits when its input ends.
const nodeHotLoop = `function hotLoopKprof(n) { let x = 0; for (let i = 0; i < n; i++) { x = (x * 31 + i) | 0 } return x }
let s = 0;
console.log("ready");
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
setInterval(() => { s += hotLoopKprof(200000) }, 1);`

// startNode runs nodeHotLoop with --perf-basic-prof and returns it once its perf map
// names hotLoopKprof in executable memory, with those lines.
func startNode(t *testing.T) (*target, []perfMapLine) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (apt-get install nodejs; hack/install-tools.sh does): %v", err)
	}
	cmd := exec.Command(node, "--perf-basic-prof", "-e", nodeHotLoop)
	cmd.Dir = t.TempDir() // --perf-basic-prof also writes a V8 log there
	tg := startCmd(t, "node", node, cmd)
	path := hostPerfMap(t, tg.pid)
	deadline := time.Now().Add(60 * time.Second)
	for {
		exec := execRanges(t, tg.pid)
		var hot []perfMapLine
		for _, l := range readPerfMapFile(t, path) {
			if strings.Contains(l.name, "hotLoopKprof") && inRanges(exec, l.start) {
				hot = append(hot, l)
			}
		}
		if len(hot) > 0 {
			return tg, hot
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d: no perf map line for hotLoopKprof in executable memory in %s at %s", tg.pid, path, 60*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUserNamesJITCodeFromThePerfMap(t *testing.T) {
	t.Run("code Node compiled with --perf-basic-prof is named from its perf map", func(t *testing.T) {
		tg, hot := startNode(t)
		s := newSymbolizer(t, Config{})
		observe(t, s, tg.pid)
		check := func(t *testing.T) {
			t.Helper()
			for _, l := range hot {
				addr := l.start + l.size/2
				got := s.User(tg.pid, []uint64{addr})[0]
				if !strings.Contains(got.Function, "hotLoopKprof") {
					t.Errorf("%#x (perf map: %q): got %q, want hotLoopKprof's code", addr, l.name, got.Function)
				}
				if got.Mapping == nil {
					t.Errorf("%#x: no Mapping", addr)
				} else if got.Mapping.File != profile.AnonMappingFile {
					t.Errorf("%#x: Mapping.File %q, want %q (JIT code)", addr, got.Mapping.File, profile.AnonMappingFile)
				}
			}
		}
		check(t)
		st := s.Stats()
		if st.PerfMapsRead == 0 || st.PerfMapSymbols == 0 || st.JITFrames < uint64(len(hot)) {
			t.Errorf("Stats: %d perf map reads, %d symbols, %d JIT frames; want reads and symbols, and at least %d frames",
				st.PerfMapsRead, st.PerfMapSymbols, st.JITFrames, len(hot))
		}
		tg.kill()
		t.Run("after it exited, Forget not called", check)
		s.Forget(tg.pid)
		if got := s.User(tg.pid, []uint64{hot[0].start})[0]; got.Function != "" {
			t.Errorf("after Forget: got %q, want nothing (the perf map goes with the process)", got.Function)
		}
	})

	t.Run("a perf map that grows is read again when a lookup misses, complete lines only", func(t *testing.T) {
		tg := start(t, "c-pie")
		anon := tg.report("anon")
		if len(anon) != 1 {
			t.Fatalf("the target reported %d anonymous pages, want 1", len(anon))
		}
		a := anon[0].addr
		path := hostPerfMap(t, tg.pid)
		writeFile(t, path, fmt.Sprintf("%x 10 kprof_jitted_1\n%x 10 kprof_jit", a, a+0x10))
		s := newSymbolizer(t, Config{})
		clock := time.Unix(1000, 0)
		s.now = func() time.Time { return clock }
		observe(t, s, tg.pid)
		name := func(addr uint64) string { return s.User(tg.pid, []uint64{addr})[0].Function }
		if got := s.User(tg.pid, []uint64{a + 4})[0]; got.Function != "kprof_jitted_1" || got.Mapping == nil || got.Mapping.File != profile.AnonMappingFile {
			t.Errorf("got %q in %+v, want kprof_jitted_1 in %s", got.Function, got.Mapping, profile.AnonMappingFile)
		}
		if got := name(a + 0x14); got != "" {
			t.Errorf("a line still being written: got %q, want nothing", got)
		}
		appendFile(t, path, fmt.Sprintf("ted_2 [extra text]\n%x 10 kprof_jitted_3\n", a+0x20))
		if got := name(a + 0x24); got != "" {
			t.Errorf("within refreshInterval of the last read: got %q, want nothing yet", got)
		}
		clock = clock.Add(refreshInterval)
		if got := name(a + 0x24); got != "kprof_jitted_3" {
			t.Errorf("after refreshInterval: got %q, want kprof_jitted_3", got)
		}
		if got := name(a + 0x14); got != "kprof_jitted_2 [extra text]" {
			t.Errorf("the line completed: got %q, want %q", got, "kprof_jitted_2 [extra text]")
		}
		if st := s.Stats(); st.PerfMapsRead != 2 || st.PerfMapSymbols != 3 {
			t.Errorf("Stats: %d reads, %d symbols; want 2 and 3", st.PerfMapsRead, st.PerfMapSymbols)
		}

		// A new file at the path (the runtime started its map again) is read from its start.
		writeFile(t, path+".new", fmt.Sprintf("%x 10 kprof_restarted\n", a+0x30))
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(refreshInterval)
		if got := name(a + 0x34); got != "kprof_restarted" {
			t.Errorf("a new file: got %q, want kprof_restarted", got)
		}
		if got := name(a + 0x24); got != "" {
			t.Errorf("a new file: the old file's kprof_jitted_3 is still named (%q)", got)
		}
	})

	t.Run("a perf map past its bounds is read up to them", func(t *testing.T) {
		tg := start(t, "c-pie")
		a := tg.report("anon")[0].addr
		path := hostPerfMap(t, tg.pid)
		var b strings.Builder
		for i := range 5 {
			fmt.Fprintf(&b, "%x 10 kprof_jitted_%d\n", a+uint64(i)*0x10, i)
		}
		writeFile(t, path, b.String())
		s := newSymbolizer(t, Config{MaxPerfMapEntries: 2})
		observe(t, s, tg.pid)
		for i, want := range []string{"kprof_jitted_0", "kprof_jitted_1", "", "", ""} {
			if got := s.User(tg.pid, []uint64{a + uint64(i)*0x10})[0].Function; got != want {
				t.Errorf("line %d: got %q, want %q", i, got, want)
			}
		}
		if st := s.Stats(); st.PerfMapsTruncated != 1 || st.PerfMapSymbols != 2 {
			t.Errorf("Stats: %d truncated, %d symbols; want 1 and 2", st.PerfMapsTruncated, st.PerfMapSymbols)
		}

		s = newSymbolizer(t, Config{MaxPerfMapBytes: int64(len("0000000000000000 10 kprof_jitted_0\n")) + 5})
		observe(t, s, tg.pid)
		if got := s.User(tg.pid, []uint64{a})[0].Function; got != "kprof_jitted_0" {
			t.Errorf("MaxPerfMapBytes: first line: got %q", got)
		}
		if got := s.User(tg.pid, []uint64{a + 0x10})[0].Function; got != "" {
			t.Errorf("MaxPerfMapBytes: a line past the bound: got %q, want nothing", got)
		}
		if st := s.Stats(); st.PerfMapsTruncated != 1 {
			t.Errorf("MaxPerfMapBytes: %d truncated, want 1", st.PerfMapsTruncated)
		}
	})
}

// TestPerfMapIsReadAsTheProcessSeesIt: a containerized runtime writes its perf map in
// its own /tmp, named by its pid in its own pid namespace.
func TestPerfMapIsReadAsTheProcessSeesIt(t *testing.T) {
	root := t.TempDir()
	copyFile(t, targetBinary(t, "c-static"), filepath.Join(root, "kprof-target"))
	if err := os.Mkdir(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	tg := startInRoot(t, "c-static", root, "/kprof-target", true)
	nspid, err := nsPid(fmt.Sprintf("/proc/%d/status", tg.pid))
	if err != nil || nspid == tg.pid {
		t.Fatalf("NSpid %d (%v) of host pid %d: want a pid of its own namespace", nspid, err, tg.pid)
	}
	a := tg.report("anon")[0].addr
	inRoot := filepath.Join(root, "tmp", fmt.Sprintf("perf-%d.map", nspid))
	// Decoys: the host's perf map of the host pid, and a host file symlinks point to.
	writeFile(t, hostPerfMap(t, tg.pid), fmt.Sprintf("%x 100 kprof_host_pid\n", a))
	secret := filepath.Join(t.TempDir(), "secret.map")
	writeFile(t, secret, fmt.Sprintf("%x 100 kprof_host_secret\n", a))
	writeFile(t, filepath.Join(root, "tmp", "real.map"), fmt.Sprintf("%x 100 kprof_in_root_via_link\n", a))

	cases := []struct {
		name  string
		setup func(t *testing.T)
		want  string
	}{
		{"the map in the process's /tmp, named by its namespace's pid, is read", func(t *testing.T) {
			writeFile(t, inRoot, fmt.Sprintf("%x 100 kprof_in_root\n", a))
		}, "kprof_in_root"},
		{"a symlink within the root is followed", func(t *testing.T) {
			if err := os.Symlink("/tmp/real.map", inRoot); err != nil {
				t.Fatal(err)
			}
		}, "kprof_in_root_via_link"},
		{"an absolute symlink to a host file is not followed out of the root", func(t *testing.T) {
			if err := os.Symlink(secret, inRoot); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"a symlink climbing out with .. is not followed out of the root", func(t *testing.T) {
			if err := os.Symlink("../../../../../../../.."+secret, inRoot); err != nil {
				t.Fatal(err)
			}
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(inRoot)
			tc.setup(t)
			s := newSymbolizer(t, Config{})
			observe(t, s, tg.pid)
			got := s.User(tg.pid, []uint64{a + 8})[0]
			if got.Function != tc.want {
				t.Errorf("got %q, want %q", got.Function, tc.want)
			}
			if got.Mapping == nil || got.Mapping.File != profile.AnonMappingFile {
				t.Errorf("Mapping %+v, want File %s", got.Mapping, profile.AnonMappingFile)
			}
		})
	}
}
