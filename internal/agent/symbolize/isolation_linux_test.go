//go:build linux

package symbolize

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestUserReadsFilesAsTheProcessSeesThem covers the paths a container's process has:
// a root of its own, and a binary replaced or deleted under it.
func TestUserReadsFilesAsTheProcessSeesThem(t *testing.T) {
	t.Run("a process in a mount namespace of its own, as in a container, is read through /proc/PID/root", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Fatal("a mount namespace and pivot_root need root: run make test as root")
		}
		for _, tool := range []string{"unshare", "pivot_root", "mount", "sh"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Fatalf("%s is not installed: cannot make a container-like root", tool)
			}
		}
		root := t.TempDir()
		copyFile(t, targetBinary(t, "go"), filepath.Join(root, "kprof-target"))
		const inside = "/kprof-target" // not a file on the host
		// What a container runtime does: a new mount namespace whose root is the image.
		// The maps then show paths inside it, reachable only through /proc/PID/root.
		script := `mount --bind "$1" "$1" && cd "$1" && mkdir .old && pivot_root . .old && exec ` + inside
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", root)
		tg := startCmd(t, "go", inside, cmd)
		if _, err := os.Stat(inside); err == nil {
			t.Fatalf("%s exists on the host: the test would not show that /proc/PID/root is used", inside)
		}
		s := newSymbolizer(t, Config{})
		observe(t, s, tg.pid)
		stack := append(tg.report("leaf"), tg.report("ret")...)
		got := s.User(tg.pid, addrsOf(stack))
		wantFrames(t, got, stack)
		if m := got[0].Mapping; m == nil || m.File != inside {
			t.Errorf("Mapping %+v, want File %s (the path inside the container)", m, inside)
		}

		// map_files would also find the file; check that the root path alone does, with
		// an address range that map_files does not have.
		fi, err := os.Stat(filepath.Join(root, "kprof-target"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.openMapped(tg.pid, procMapping{start: 0x1000, limit: 0x2000, path: inside, inode: fi.Sys().(*syscall.Stat_t).Ino})
		if err != nil {
			t.Fatalf("open %s through /proc/%d/root: %v", inside, tg.pid, err)
		}
		defer f.Close()
		if got, err := f.Stat(); err != nil || !os.SameFile(got, fi) {
			t.Errorf("opened %v (%v), want the container's %s", got, err, inside)
		}
	})

	t.Run("a binary deleted after it started is read through /proc/PID/map_files", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kprof-target")
		copyFile(t, targetBinary(t, "go"), path)
		tg := startCmd(t, "go", path, exec.Command(path))
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		s := newSymbolizer(t, Config{})
		observe(t, s, tg.pid)
		if st := s.Stats(); st.FilesRefused != 0 {
			t.Skipf("map_files not readable here (needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE): %s", st.LastRefusal)
		}
		stack := append(tg.report("leaf"), tg.report("ret")...)
		got := s.User(tg.pid, addrsOf(stack))
		wantFrames(t, got, stack)
		if m := got[0].Mapping; m == nil || m.File != path {
			t.Errorf("Mapping %+v, want File %s without \" (deleted)\"", m, path)
		}
	})

	t.Run("a binary replaced at its path after it started is read through /proc/PID/map_files", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kprof-target")
		copyFile(t, targetBinary(t, "go"), path)
		tg := startCmd(t, "go", path, exec.Command(path))
		// Another program at the same path (new inode), as after a package upgrade.
		if err := os.Rename(path, path+".old"); err != nil {
			t.Fatal(err)
		}
		copyFile(t, targetBinary(t, "c-pie"), path)
		if err := os.Remove(path + ".old"); err != nil {
			t.Fatal(err)
		}
		s := newSymbolizer(t, Config{})
		observe(t, s, tg.pid)
		stack := append(tg.report("leaf"), tg.report("ret")...)
		wantFrames(t, s.User(tg.pid, addrsOf(stack)), stack)
	})
}

func TestOpenInRootStaysInTheRoot(t *testing.T) {
	host := t.TempDir()
	secret := filepath.Join(host, "secret")
	if err := os.WriteFile(secret, []byte("host file"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "lib.so"), []byte("container file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"abs":      secret,                           // absolute: must resolve inside root
		"dotdot":   "../../../../../../../" + secret, // climbing out: clamped at root
		"inside":   "/lib.so",
		"relative": "lib.so",
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		path string
		want string // contents; "" means the open or the identity check must fail
	}{
		{"a plain file is opened", "/lib.so", "container file"},
		{"a symlink inside the root is followed", "/inside", "container file"},
		{"a relative symlink is followed", "/relative", "container file"},
		{"an absolute symlink does not reach the host", "/abs", ""},
		{"a symlink climbing out with .. does not reach the host", "/dotdot", ""},
		{"a path climbing out with .. does not reach the host", "/../../../../../../.." + secret, ""},
		{"a FIFO is refused without blocking", "/fifo", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := openInRoot(root, tc.path)
			if err == nil {
				defer f.Close()
				_, err = statID(f)
			}
			if tc.want == "" {
				if err == nil {
					b, _ := io.ReadAll(f)
					t.Fatalf("opened %q, want a failure", b)
				}
				return
			}
			if err != nil {
				t.Fatalf("openInRoot: %v", err)
			}
			if b, _ := io.ReadAll(f); string(b) != tc.want {
				t.Errorf("read %q, want %q", b, tc.want)
			}
		})
	}
}
