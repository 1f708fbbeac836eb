//go:build linux

package symbolize

import (
	"bufio"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/kprof/kprof/internal/logging/logtest"
)

// kernelSymbol picks a text symbol of the running kernel from /proc/kallsyms that is the
// only symbol at its address and has at least 0x20 bytes before the next one. It skips
// the test when addresses are hidden.
func kernelSymbol(t *testing.T) (string, uint64) {
	t.Helper()
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		t.Skipf("no /proc/kallsyms: %v", err)
	}
	defer f.Close()
	type sym struct {
		addr uint64
		name string
		text bool
	}
	var syms []sym
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 {
			continue
		}
		a, err := strconv.ParseUint(fs[0], 16, 64)
		if err != nil || a == 0 {
			continue
		}
		syms = append(syms, sym{a, fs[2], fs[1] == "t" || fs[1] == "T"})
	}
	if len(syms) == 0 {
		t.Skip("/proc/kallsyms shows no addresses to this user (kptr_restrict): cannot check kernel symbols")
	}
	sort.Slice(syms, func(i, j int) bool { return syms[i].addr < syms[j].addr })
	usable := func(i int) bool {
		return syms[i].text && (i == 0 || syms[i-1].addr != syms[i].addr) && i+1 < len(syms) && syms[i+1].addr-syms[i].addr >= 0x20
	}
	for _, want := range []string{"do_sys_openat2", "vfs_read", "schedule"} {
		for i, s := range syms {
			if s.name == want && usable(i) {
				return s.name, s.addr
			}
		}
	}
	for i, s := range syms {
		if usable(i) {
			return s.name, s.addr
		}
	}
	t.Skip("no usable kernel text symbol")
	return "", 0
}

func TestKernelNamesTheRunningKernelsFunctions(t *testing.T) {
	name, addr := kernelSymbol(t)
	s := newSymbolizer(t, Config{})
	cases := []struct {
		name  string
		addrs []uint64
		want  []string
	}{
		{"a function's own address is its name", []uint64{addr}, []string{name}},
		{"an address inside the function is its name", []uint64{addr + 0x10}, []string{name}},
		{"a return address just past the start is looked up one byte earlier", []uint64{addr + 0x10, addr + 1}, []string{name, name}},
		{"a return address at the start belongs to what precedes it", []uint64{addr, addr}, []string{name, "!" + name}},
		{"a user-space address is not a kernel function", []uint64{0x400000}, []string{""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Kernel(tc.addrs)
			for i, want := range tc.want {
				if !got[i].Kernel || got[i].Address != tc.addrs[i] || got[i].Mapping != nil {
					t.Errorf("frame %d: %+v, want a kernel frame at %#x without Mapping", i, got[i], tc.addrs[i])
				}
				if not, ok := strings.CutPrefix(want, "!"); ok {
					if got[i].Function == not {
						t.Errorf("frame %d at %#x: got %q, want anything else", i, tc.addrs[i], not)
					}
				} else if got[i].Function != want {
					t.Errorf("frame %d at %#x: got %q, want %q", i, tc.addrs[i], got[i].Function, want)
				}
			}
		})
	}
	if st := s.Stats(); st.KernelSymbols == 0 || st.KernelRestricted || st.KernelError != "" {
		t.Errorf("Stats: KernelSymbols %d, KernelRestricted %v, KernelError %q", st.KernelSymbols, st.KernelRestricted, st.KernelError)
	}
	if err := s.ReloadKernel(); err != nil {
		t.Errorf("ReloadKernel: %v", err)
	}
	if got := s.Kernel([]uint64{addr})[0].Function; got != name {
		t.Errorf("after ReloadKernel: got %q, want %q", got, name)
	}
}

// fakeProc is a procfs with only a kallsyms: how a kernel with kptr_restrict looks,
// which this machine cannot be made to show without changing it for everyone.
func fakeProc(t *testing.T, kallsyms string) string {
	t.Helper()
	dir := t.TempDir()
	if kallsyms != "" {
		if err := os.WriteFile(filepath.Join(dir, "kallsyms"), []byte(kallsyms), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestKernelReportsHiddenOrMissingKallsyms(t *testing.T) {
	cases := []struct {
		name           string
		kallsyms       string
		wantRestricted bool
		wantErr        string
	}{
		{
			name:           "kptr_restrict zeros are reported as restricted, not used",
			kallsyms:       "0000000000000000 T _stext\n0000000000000000 t do_sys_openat2\n0000000000000000 T vfs_read\n",
			wantRestricted: true,
			wantErr:        ErrKernelRestricted.Error(),
		},
		{
			name:    "a missing kallsyms is an error in Stats",
			wantErr: "no such file",
		},
		{
			name:     "a kallsyms without a symbol line is an error in Stats",
			kallsyms: "garbage\n\n",
			wantErr:  "no symbols",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logged []string
			log := logtest.Func(slog.LevelInfo, func(line string) { logged = append(logged, line) })
			s := newSymbolizer(t, Config{ProcRoot: fakeProc(t, tc.kallsyms), Logger: log})
			for _, f := range s.Kernel([]uint64{0xffffffff81000000, 0xffffffff81000010}) {
				if f.Function != "" || !f.Kernel {
					t.Errorf("frame %+v: want a kernel frame without a name", f)
				}
			}
			st := s.Stats()
			if st.KernelRestricted != tc.wantRestricted || !strings.Contains(st.KernelError, tc.wantErr) || st.KernelSymbols != 0 {
				t.Errorf("Stats: KernelRestricted %v, KernelError %q, KernelSymbols %d; want %v, an error containing %q, 0",
					st.KernelRestricted, st.KernelError, st.KernelSymbols, tc.wantRestricted, tc.wantErr)
			}
			if len(logged) != 1 || (tc.wantRestricted && !strings.Contains(logged[0], "kptr_restrict")) {
				t.Errorf("logged %q; want one line (naming kptr_restrict when restricted)", logged)
			}
			err := s.ReloadKernel()
			if err == nil || errors.Is(err, ErrKernelRestricted) != tc.wantRestricted {
				t.Errorf("ReloadKernel: %v; want an error, ErrKernelRestricted %v", err, tc.wantRestricted)
			}
		})
	}
}
