//go:build linux

package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

func TestTheProgramIsChosenByKernelArchitectureAndConfig(t *testing.T) {
	all := func(asm.BuiltinFunc) error { return nil }
	without := func(missing asm.BuiltinFunc) func(asm.BuiltinFunc) error {
		return func(fn asm.BuiltinFunc) error {
			if fn == missing {
				return fmt.Errorf("probe %s: %w", fn, ebpf.ErrNotSupported)
			}
			return nil
		}
	}
	verifierRefuses := fmt.Errorf("load program: invalid argument: unknown func bpf_loop#181")
	cases := []struct {
		name       string
		fpOnly     bool
		arch       string
		haveHelper func(asm.BuiltinFunc) error
		unwinder   error // what loading the unwinder returns
		want       program
		wantErr    bool
		wantLog    []string // "" for no log line
	}{
		{name: "a 5.17+ x86-64 kernel runs the unwinder", arch: "amd64", haveHelper: all, want: unwinderProgram},
		{name: "a kernel without bpf_loop runs frame pointers only", arch: "amd64", haveHelper: without(asm.FnLoop),
			want: framePointerProgram, wantLog: []string{"frame pointer", "FnLoop", "5.17"}},
		{name: "a kernel without bpf_task_pt_regs runs frame pointers only", arch: "amd64", haveHelper: without(asm.FnTaskPtRegs),
			want: framePointerProgram, wantLog: []string{"FnTaskPtRegs", "5.15"}},
		{name: "arm64 runs frame pointers only", arch: "arm64", haveHelper: all,
			want: framePointerProgram, wantLog: []string{"x86-64 only", "arm64"}},
		{name: "FramePointersOnly runs frame pointers only without a log line", fpOnly: true, arch: "amd64", haveHelper: all,
			want: framePointerProgram},
		{name: "a verifier that refuses the unwinder falls back to frame pointers", arch: "amd64", haveHelper: all,
			unwinder: verifierRefuses, want: framePointerProgram, wantLog: []string{"refused the unwinder", "unknown func"}},
		{name: "a permission error is returned, not hidden by the fallback", arch: "amd64", haveHelper: all,
			unwinder: fmt.Errorf("load: %w", unix.EPERM), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			var loaded []program
			load := func(p program) (*samplerObjects, error) {
				loaded = append(loaded, p)
				if p == unwinderProgram && tc.unwinder != nil {
					return nil, tc.unwinder
				}
				return &samplerObjects{}, nil
			}
			cfg := Config{FramePointersOnly: tc.fpOnly}
			// chooseProgram takes the architecture; loadObjects uses this machine's.
			first, _ := chooseProgram(tc.fpOnly, tc.arch, tc.haveHelper)
			if tc.arch != runtime.GOARCH {
				if first != tc.want {
					t.Errorf("chooseProgram on %s = %s, want %s", tc.arch, first, tc.want)
				}
				return
			}
			_, got, err := loadObjects(&cfg, tc.haveHelper, load, log)
			if tc.wantErr {
				if err == nil || !errors.Is(err, unix.EPERM) {
					t.Errorf("loadObjects error %v, want the EPERM", err)
				}
				if len(loaded) != 1 {
					t.Errorf("loaded %v after a permission error, want the unwinder only", loaded)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || loaded[len(loaded)-1] != tc.want {
				t.Errorf("loaded %v, in force %s; want %s", loaded, got, tc.want)
			}
			lines := strings.Count(logs.String(), "\n")
			if len(tc.wantLog) == 0 && lines != 0 {
				t.Errorf("unexpected log: %s", logs.String())
			}
			if len(tc.wantLog) > 0 && lines != 1 {
				t.Errorf("%d log lines, want one: %s", lines, logs.String())
			}
			for _, w := range tc.wantLog {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("log %q does not say %q", logs.String(), w)
				}
			}
		})
	}
}
