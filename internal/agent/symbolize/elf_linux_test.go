//go:build linux

package symbolize

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/kprof/kprof/internal/logging/logtest"
)

// randomBytes is deterministic, so a failure reproduces.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// goBinary returns the bytes of the "go" target, a real ELF file to corrupt.
func goBinary(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(targetBinary(t, "go"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sectionHeader returns the offset in b of the section header of name.
func sectionHeader(t *testing.T, b []byte, name string) int64 {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range f.Sections {
		if s.Name == name {
			return int64(binary.LittleEndian.Uint64(b[0x28:])) + int64(i)*64 // e_shoff + i*sizeof(Elf64_Shdr)
		}
	}
	t.Fatalf("no section %s", name)
	return 0
}

// sectionRange returns where the contents of section name are in b.
func sectionRange(t *testing.T, b []byte, name string) (int, int) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Section(name)
	if s == nil {
		t.Fatalf("no section %s", name)
	}
	return int(s.Offset), int(s.Offset + s.Size)
}

func TestOpenObjectRejectsBadFilesWithoutPanic(t *testing.T) {
	good := goBinary(t)
	mutate := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	cases := []struct {
		name string
		data []byte
		max  int64
		// wantHeaderErr is a substring of the error from the header; "" means the header
		// must parse.
		wantHeaderErr string
		// wantSymbols: the table must still name functions (a corrupt part is skipped).
		wantSymbols bool
	}{
		{name: "random bytes are not ELF", data: randomBytes(64<<10, 1), wantHeaderErr: errMalformed.Error()},
		{name: "an empty file is not ELF", data: nil, wantHeaderErr: errMalformed.Error()},
		{name: "a file over the limit is refused before it is read", data: good, max: 1024, wantHeaderErr: ErrFileTooLarge.Error()},
		{name: "a truncated binary is malformed", data: good[:len(good)/3], wantHeaderErr: errMalformed.Error()},
		{name: "only the ELF header is malformed", data: good[:64], wantHeaderErr: errMalformed.Error()},
		{
			name: "random bytes after a valid ELF header are malformed",
			data: append(bytes.Clone(good[:64]), randomBytes(64<<10, 2)...), wantHeaderErr: errMalformed.Error(),
		},
		{
			name: "a .symtab claiming more bytes than the file is skipped; the pclntab still names",
			data: mutate(func(b []byte) {
				binary.LittleEndian.PutUint64(b[sectionHeader(t, b, ".symtab")+32:], 1<<40) // sh_size
			}),
			wantSymbols: true,
		},
		{
			name: "a .gopclntab of random bytes is skipped; .symtab still names",
			data: mutate(func(b []byte) {
				lo, hi := sectionRange(t, b, ".gopclntab")
				copy(b[lo:hi], randomBytes(hi-lo, 3))
			}),
			wantSymbols: true,
		},
		{
			name: "a .gopclntab with a corrupt body past its header does not panic",
			data: mutate(func(b []byte) {
				lo, hi := sectionRange(t, b, ".gopclntab")
				copy(b[lo+64:hi], randomBytes(hi-lo-64, 4))
			}),
			wantSymbols: true,
		},
		{
			name: "a .gopclntab header claiming a huge function count is refused",
			data: mutate(func(b []byte) {
				lo, _ := sectionRange(t, b, ".gopclntab")
				binary.LittleEndian.PutUint64(b[lo+8:], 1<<40) // nfunc
			}),
			wantSymbols: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = DefaultMaxFileBytes
			}
			id := fileID{ino: 1, size: int64(len(tc.data))}
			o, h, err := openObject(bytes.NewReader(tc.data), int64(len(tc.data)), id, max)
			if tc.wantHeaderErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantHeaderErr) {
					t.Fatalf("openObject: %v, want an error containing %q", err, tc.wantHeaderErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("openObject: %v", err)
			}
			if h.key == "" || len(h.loads) == 0 {
				t.Errorf("header %+v: want a key and PT_LOAD segments", h)
			}
			tab := o.table()
			named := false
			for i := range tab.syms {
				if tab.symName(i) == "main.kprofAlpha" {
					named = true
				}
			}
			if tab.gotab != nil {
				for _, entry := range goEntries(tab.gotab) {
					for _, fr := range tab.lookup(entry, nil) {
						named = named || fr.fn == "main.kprofAlpha"
					}
				}
			}
			if named != tc.wantSymbols {
				t.Errorf("main.kprofAlpha named: %v, want %v (sources %q, err %v)", named, tc.wantSymbols, tab.sources, tab.err)
			}
		})
	}
}

func FuzzOpenObject(f *testing.F) {
	exe, err := os.Executable()
	if err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b[:64])
	f.Add(b[:4096])
	f.Add(randomBytes(512, 5))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, _, err := openObject(bytes.NewReader(data), int64(len(data)), fileID{}, 1<<20)
		if err != nil {
			return
		}
		tab := o.table()
		for _, pc := range []uint64{0, 0x401000, ^uint64(0)} {
			tab.lookup(pc, nil)
		}
	})
}

// mapExec maps the file at path executable into this process and returns the address.
func mapExec(t *testing.T, path string, size int) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_EXEC, syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("cannot map %s executable here (noexec mount?): %v", path, err)
	}
	t.Cleanup(func() { syscall.Munmap(mem) })
	return uint64(uintptr(unsafe.Pointer(&mem[0])))
}

func TestCorruptMappedFilesAreRefusedWithoutPanic(t *testing.T) {
	good := goBinary(t)
	cases := []struct {
		name string
		data []byte
	}{
		{"random bytes mapped executable", randomBytes(64<<10, 6)},
		{"a truncated ELF mapped executable", good[:64<<10]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "corrupt.so")
			if err := os.WriteFile(path, tc.data, 0o755); err != nil {
				t.Fatal(err)
			}
			addr := mapExec(t, path, len(tc.data))
			var refusals []string
			log := logtest.Func(slog.LevelDebug, func(line string) { refusals = append(refusals, line) })
			s := newSymbolizer(t, Config{Logger: log})
			self := int32(os.Getpid())
			observe(t, s, self)
			got := s.User(self, []uint64{addr + 16, addr + 32})
			for i, f := range got {
				if f.Function != "" || f.Mapping == nil || f.Mapping.File != path {
					t.Errorf("frame %d: %q in %+v; want no name, mapping of %s", i, f.Function, f.Mapping, path)
				}
			}
			if st := s.Stats(); st.FilesRefused == 0 || st.LastRefusal == "" {
				t.Errorf("FilesRefused %d, LastRefusal %q; want a refusal", st.FilesRefused, st.LastRefusal)
			}
			n := 0
			for _, r := range refusals {
				if strings.Contains(r, `"file not symbolized"`) && strings.Contains(r, path) && strings.Contains(r, errMalformed.Error()) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d log lines refuse %s as malformed, want 1; log: %q", n, path, refusals)
			}
		})
	}
}

//go:noinline
func selfStack() []uintptr {
	pcs := make([]uintptr, 4)
	return pcs[:runtime.Callers(1, pcs)]
}

func TestUserNamesThisTestBinary(t *testing.T) {
	// The test binary is the case a profiler meets most: a large Go binary, here with
	// the race detector's C code linked in.
	pcs := selfStack()
	s := newSymbolizer(t, Config{})
	self := int32(os.Getpid())
	observe(t, s, self)
	addrs := make([]uint64, len(pcs))
	for i, pc := range pcs {
		addrs[i] = uint64(pc)
	}
	got := s.User(self, addrs)
	// What the runtime says, inlined frames expanded: CallersFrames looks up pc-1, so
	// the leaf (looked up exactly) is given as pc+1.
	var want []runtime.Frame
	for i, pc := range pcs {
		if i == 0 {
			pc++
		}
		frames := runtime.CallersFrames([]uintptr{pc, 0}) // see testdata/gotarget
		for {
			f, more := frames.Next()
			want = append(want, f)
			if !more {
				break
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Function != w.Function || got[i].File != w.File || got[i].Line != w.Line {
			t.Errorf("frame %d: got %q %s:%d, want %q %s:%d", i, got[i].Function, got[i].File, got[i].Line, w.Function, w.File, w.Line)
		}
	}
	if !strings.HasSuffix(got[0].Function, ".selfStack") && !strings.HasSuffix(got[1].Function, ".selfStack") {
		t.Errorf("stack starts %q, %q; want selfStack", got[0].Function, got[1].Function)
	}
}
