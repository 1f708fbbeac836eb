//go:build linux

package bpf

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Test programs in C, compiled by the tests with gcc, and what the tests need to
// know of them: their symbols and mappings.

// buildC compiles src with gcc and flags into a temporary executable.
func buildC(t *testing.T, src string, flags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("needs gcc to build the test program")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prog.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog")
	args := append(slices.Clone(flags), "-o", bin, filepath.Join(dir, "prog.c"))
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// startProgram runs bin, waits for its "ready" line and returns its pid; cleanup
// kills it.
func startProgram(t *testing.T, bin string, args ...string) uint32 {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("%s: want a ready line, got %q, %v", bin, line, err)
	}
	return uint32(cmd.Process.Pid)
}

// symbol is the address range of a function of an executable (file addresses).
type symbol struct{ start, end uint64 }

func symbols(t *testing.T, bin string, names ...string) map[string]symbol {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]symbol{}
	for _, s := range syms {
		if slices.Contains(names, s.Name) && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			found[s.Name] = symbol{s.Value, s.Value + s.Size}
		}
	}
	for _, n := range names {
		if _, ok := found[n]; !ok {
			t.Fatalf("%s has no function %s", bin, n)
		}
	}
	return found
}

// execMappings returns the executable mappings of process pid, the bias of each
// (from the ELF program headers of the file mapped), and the one of file bin.
func execMappings(t *testing.T, pid uint32, bin string) (maps []Mapping, exe int) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exe = -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || fields[1][2] != 'x' {
			continue
		}
		start, end, _ := strings.Cut(fields[0], "-")
		m := Mapping{Start: hexU64(t, start), End: hexU64(t, end)}
		off := hexU64(t, fields[2])
		path := ""
		if len(fields) >= 6 {
			path = fields[5]
		}
		if strings.HasPrefix(path, "/") {
			m.Bias = m.Start - fileAddress(t, path, off)
		}
		if path == bin {
			exe = len(maps)
		}
		if m.Start >= 1<<47 { // [vsyscall]
			continue
		}
		maps = append(maps, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if exe < 0 {
		t.Fatalf("process %d has no executable mapping of %s", pid, bin)
	}
	return maps, exe
}

// fileAddress is the ELF virtual address of file offset off of path.
func fileAddress(t *testing.T, path string, off uint64) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Off <= off && off < p.Off+p.Filesz {
			return p.Vaddr + off - p.Off
		}
	}
	t.Fatalf("%s: no PT_LOAD holds offset %#x", path, off)
	return 0
}

func hexU64(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
