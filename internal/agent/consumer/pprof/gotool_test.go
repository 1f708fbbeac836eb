package pprof

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGoToolPprofReadsEncodedProfile checks the output with the real pprof
// tool, not only with the library that wrote it.
func TestGoToolPprofReadsEncodedProfile(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not in PATH, needed for go tool pprof: %v", err)
	}
	data, err := Encode(testEvent())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "cpu.pprof")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-symbolize=none", "-traces", file).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof: %v\n%s", err, out)
	}
	for _, want := range []string{"do_syscall_64", "main.inner", "main.outer", "main.main", "pod:  web-0", "pid:  42", "30ms", "File: server"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("pprof -traces output lacks %q:\n%s", want, out)
		}
	}
}
