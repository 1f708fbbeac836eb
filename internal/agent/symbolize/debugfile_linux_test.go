//go:build linux

package symbolize

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (binutils; hack/install-tools.sh installs it)", name)
	}
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// debugFiles are a stripped build of the c-static target and its debug files.
type debugFiles struct {
	stripped string // no .symtab, a build ID
	linked   string // stripped with a .gnu_debuglink to kprof-target.debug
	debug    string // the debug file: objcopy --only-keep-debug
	other    string // the debug file of c-static-2, another build ID
	badCRC   string // debug with a byte appended: same build ID, another CRC
	buildID  string
}

func makeDebugFiles(t *testing.T) debugFiles {
	t.Helper()
	dir := t.TempDir()
	full := targetBinary(t, "c-static")
	d := debugFiles{
		stripped: filepath.Join(dir, "stripped"),
		linked:   filepath.Join(dir, "linked"),
		debug:    filepath.Join(dir, "kprof-target.debug"),
		other:    filepath.Join(dir, "other.debug"),
		badCRC:   filepath.Join(dir, "badcrc.debug"),
		buildID:  gnuBuildID(t, full),
	}
	run(t, "objcopy", "--only-keep-debug", full, d.debug)
	run(t, "strip", "--strip-all", "-o", d.stripped, full)
	run(t, "objcopy", "--add-gnu-debuglink="+d.debug, d.stripped, d.linked)
	run(t, "objcopy", "--only-keep-debug", targetBinary(t, "c-static-2"), d.other)
	b, err := os.ReadFile(d.debug)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.badCRC, append(b, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	if other := gnuBuildID(t, targetBinary(t, "c-static-2")); other == d.buildID {
		t.Fatalf("c-static and c-static-2 have the same build ID %s", other)
	}
	f, err := elf.Open(d.stripped)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.SectionByType(elf.SHT_SYMTAB) != nil || f.SectionByType(elf.SHT_DYNSYM) != nil {
		t.Fatalf("%s still has symbols", d.stripped)
	}
	return d
}

func TestStrippedBinariesAreNamedFromTheirDebugFiles(t *testing.T) {
	d := makeDebugFiles(t)
	byID := "/usr/lib/debug/.build-id/" + d.buildID[:2] + "/" + d.buildID[2:] + ".debug"
	cases := []struct {
		name   string
		binary string
		// files to place in the process's root, and in the agent's DebugDir, by path.
		inRoot, inDebugDir map[string]string
		named              bool
		// wantStats: DebugFiles, DebugFilesMissing, DebugFilesRejected.
		wantStats [3]uint64
	}{
		{"a debug file at its build ID in the process's root names the binary",
			d.stripped, map[string]string{byID: d.debug}, nil, true, [3]uint64{1, 0, 0}},
		{"the debug file of another build at that path is refused",
			d.stripped, map[string]string{byID: d.other}, nil, false, [3]uint64{0, 1, 1}},
		{"the agent's DebugDir is searched after the process's root",
			d.stripped, nil, map[string]string{byID[len("/usr/lib/debug"):]: d.debug}, true, [3]uint64{1, 0, 0}},
		{"a debuglink names a debug file next to the binary",
			d.linked, map[string]string{"/app/kprof-target.debug": d.debug}, nil, true, [3]uint64{1, 0, 0}},
		{"a debuglink names a debug file in .debug beside the binary",
			d.linked, map[string]string{"/app/.debug/kprof-target.debug": d.debug}, nil, true, [3]uint64{1, 0, 0}},
		{"a debuglink names a debug file under /usr/lib/debug at the binary's directory",
			d.linked, map[string]string{"/usr/lib/debug/app/kprof-target.debug": d.debug}, nil, true, [3]uint64{1, 0, 0}},
		{"a debuglink's file with another CRC is refused, even with the right build ID",
			d.linked, map[string]string{"/app/kprof-target.debug": d.badCRC}, nil, false, [3]uint64{0, 1, 1}},
		{"a debuglink's file of another build is refused",
			d.linked, map[string]string{"/app/.debug/kprof-target.debug": d.other}, nil, false, [3]uint64{0, 1, 1}},
		{"without a debug file the stripped binary stays unnamed",
			d.stripped, nil, nil, false, [3]uint64{0, 1, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, debugDir := t.TempDir(), t.TempDir()
			if err := os.Mkdir(filepath.Join(root, "app"), 0o755); err != nil {
				t.Fatal(err)
			}
			copyFile(t, tc.binary, filepath.Join(root, "app", "kprof-target"))
			for path, from := range tc.inRoot {
				os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o755)
				copyFile(t, from, filepath.Join(root, path))
			}
			for path, from := range tc.inDebugDir {
				os.MkdirAll(filepath.Dir(filepath.Join(debugDir, path)), 0o755)
				copyFile(t, from, filepath.Join(debugDir, path))
			}
			tg := startInRoot(t, "c-static", root, "/app/kprof-target", false)
			s := newSymbolizer(t, Config{DebugDir: debugDir})
			observe(t, s, tg.pid)
			stack := append(tg.report("entry"), tg.report("ret")...)
			got := s.User(tg.pid, addrsOf(stack))
			if tc.named {
				wantFrames(t, got, stack)
			} else {
				for i, f := range got {
					if f.Function != "" {
						t.Errorf("frame %d at %#x: got %q, want no name", i, f.Address, f.Function)
					}
				}
			}
			st := s.Stats()
			if g := [3]uint64{st.DebugFiles, st.DebugFilesMissing, st.DebugFilesRejected}; g != tc.wantStats {
				t.Errorf("Stats DebugFiles, DebugFilesMissing, DebugFilesRejected = %v, want %v", g, tc.wantStats)
			}
		})
	}
}

// TestLibcIsNamedFromItsDebugPackage: Debian's libc is stripped; libc6-dbg installs
// its debug file under /usr/lib/debug/.build-id, whose .symtab names the functions
// .dynsym does not have (libc's internal ones).
func TestLibcIsNamedFromItsDebugPackage(t *testing.T) {
	tg := start(t, "c-pie")
	qsort := tg.report("libc")[0].addr
	s := newSymbolizer(t, Config{})
	observe(t, s, tg.pid)
	m := s.User(tg.pid, []uint64{qsort})[0].Mapping
	if m == nil || m.BuildID == "" {
		t.Fatalf("qsort's mapping %+v: want libc with a build ID", m)
	}
	debug := "/usr/lib/debug/.build-id/" + m.BuildID[:2] + "/" + m.BuildID[2:] + ".debug"
	if _, err := os.Stat(debug); err != nil {
		t.Fatalf("no debug file for %s: libc6-dbg is not installed (apt-get install libc6-dbg; hack/install-tools.sh does): %v", m.File, err)
	}
	lib, err := elf.Open(m.File)
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	if lib.SectionByType(elf.SHT_SYMTAB) != nil {
		t.Fatalf("%s has a .symtab: it does not show that the debug file is used", m.File)
	}
	dyn, err := lib.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	dynAddrs := make(map[uint64]bool)
	var qsortLink uint64
	for _, s := range dyn {
		dynAddrs[s.Value] = true
		if s.Name == "qsort" {
			qsortLink = s.Value
		}
	}
	df, err := elf.Open(debug)
	if err != nil {
		t.Fatal(err)
	}
	defer df.Close()
	syms, err := df.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	// Local functions, alone at their address, not in .dynsym: named only by the debug file.
	count := make(map[uint64]int)
	for _, s := range syms {
		count[s.Value]++
	}
	var internal []elf.Symbol
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && elf.ST_BIND(s.Info) == elf.STB_LOCAL && s.Size >= 16 && count[s.Value] == 1 && !dynAddrs[s.Value] {
			internal = append(internal, s)
		}
	}
	if len(internal) < 10 || qsortLink == 0 {
		t.Fatalf("%s: %d internal functions, qsort at %#x: not the libc this test expects", debug, len(internal), qsortLink)
	}
	slices.SortFunc(internal, func(a, b elf.Symbol) int { return int(a.Value>>4) - int(b.Value>>4) })
	for _, sym := range internal[:10] {
		addr := qsort - qsortLink + sym.Value + sym.Size/2
		if got := s.User(tg.pid, []uint64{addr})[0].Function; got != sym.Name {
			t.Errorf("%#x (link %#x): got %q, want libc's internal %q", addr, sym.Value+sym.Size/2, got, sym.Name)
		}
	}
	if st := s.Stats(); st.DebugFiles == 0 {
		t.Errorf("Stats.DebugFiles = 0, want libc's")
	}
}
