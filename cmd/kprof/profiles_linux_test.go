package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY returns the terminal end of a new pseudo-terminal.
func openPTY(t *testing.T) *os.File {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty's terminal: %v", err)
	}
	t.Cleanup(func() { tty.Close() })
	return tty
}

func TestProfilesGetRefusesToWriteAProfileToATerminal(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.pb.gz"), []byte("never read"), 0o644); err != nil {
		t.Fatal(err)
	}
	tty := openPTY(t)
	var errOut bytes.Buffer
	root := rootCmd(newProfilesCmd())
	root.SetArgs([]string{"profiles", "get", "--store", dir, "p.pb.gz"})
	root.SetOut(tty)
	root.SetErr(&errOut)
	err := root.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "use -o FILE") {
		t.Fatalf("get to a terminal = %v, want a refusal that says to use -o FILE", err)
	}
}
