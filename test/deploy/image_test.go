package deploy

import (
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kprof/kprof/internal/testenv"
)

// dockerfile is a parsed Dockerfile: instructions per stage, continuation lines joined.
type dockerfile struct {
	stages [][]string // each stage's instructions, the FROM first
}

func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var df dockerfile
	var cur string
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if next, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur += next + " "
			continue
		}
		inst := strings.Join(strings.Fields(cur+trimmed), " ")
		cur = ""
		if strings.HasPrefix(inst, "FROM ") {
			df.stages = append(df.stages, nil)
		}
		if len(df.stages) == 0 {
			t.Fatalf("%s: %q before the first FROM", path, inst)
		}
		df.stages[len(df.stages)-1] = append(df.stages[len(df.stages)-1], inst)
	}
	if len(df.stages) < 2 {
		t.Fatalf("%s: %d stages, want a build stage and a final one", path, len(df.stages))
	}
	return df
}

func (df dockerfile) has(stage int, prefix string) bool {
	return slices.ContainsFunc(df.stages[stage], func(s string) bool { return strings.HasPrefix(s, prefix) })
}

// copies returns the sources of the build stage's COPY instructions (not COPY --from).
func (df dockerfile) copies() []string {
	var srcs []string
	for _, inst := range df.stages[0] {
		f := strings.Fields(inst)
		if f[0] != "COPY" || strings.HasPrefix(f[1], "--from") {
			continue
		}
		srcs = append(srcs, f[1:len(f)-1]...)
	}
	return srcs
}

func TestImagesAreStaticNonRootAndBuildFromTheirContext(t *testing.T) {
	root := testenv.RepoRoot()
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dockerfile, binary, pkg string
	}{
		{"Dockerfile", "/kprof", "./cmd/kprof"},
		{"examples/sample-app/Dockerfile", "/sample-app", "./examples/sample-app"},
	} {
		t.Run(tc.dockerfile, func(t *testing.T) {
			df := parseDockerfile(t, filepath.Join(root, tc.dockerfile))
			last := len(df.stages) - 1
			for _, ck := range []struct {
				what string
				ok   bool
			}{
				{"build stage FROM golang:1.26", strings.Contains(df.stages[0][0], " golang:1.26 ")},
				{"CGO_ENABLED=0 go build -trimpath " + tc.pkg, df.has(0, "RUN") && slices.ContainsFunc(df.stages[0], func(s string) bool {
					return strings.Contains(s, "CGO_ENABLED=0") && strings.Contains(s, "go build -trimpath") && strings.HasSuffix(s, tc.pkg)
				})},
				{"final stage FROM gcr.io/distroless/static-debian12:nonroot", df.stages[last][0] == "FROM gcr.io/distroless/static-debian12:nonroot"},
				{"USER 65532", df.has(last, "USER 65532")},
				{`ENTRYPOINT ["` + tc.binary + `"]`, df.has(last, `ENTRYPOINT ["`+tc.binary+`"]`)},
				{"the final stage runs nothing (no shell in distroless)", !df.has(last, "RUN")},
			} {
				if !ck.ok {
					t.Errorf("%s: %s: not so", tc.dockerfile, ck.what)
				}
			}
			srcs := df.copies()
			for _, src := range srcs {
				if !strings.Contains(string(ignore), "!"+src) {
					t.Errorf(".dockerignore does not let %s (copied by %s) into the context", src, tc.dockerfile)
				}
			}
			// The copied sources alone, without tests and testdata (.dockerignore), must build.
			ctxDir := t.TempDir()
			for _, src := range srcs {
				copyTree(t, filepath.Join(root, src), filepath.Join(ctxDir, src))
			}
			cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(t.TempDir(), "bin"), tc.pkg)
			cmd.Dir = ctxDir
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("build %s from the files %s copies (%v): %v\n%s", tc.pkg, tc.dockerfile, srcs, err, out)
			}
		})
	}
}

// copyTree copies src (a file or a directory) to dst, leaving out what .dockerignore does:
// *_test.go files and testdata directories.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && d.Name() == "testdata":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case strings.HasSuffix(d.Name(), "_test.go"), !d.Type().IsRegular():
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}
