package usage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Layout kinds, as layout.kind names them.
const (
	layoutV2     = "v2"
	layoutV1     = "v1"
	layoutHybrid = "hybrid"
)

// hierarchy is one mounted cgroup hierarchy and what is read from it.
type hierarchy struct {
	dir      string
	v2       bool
	cpu, mem bool
}

// layout is what is mounted under Root.
type layout struct {
	kind        string
	hierarchies []hierarchy
}

// detectLayout finds the cgroup hierarchies under root:
//
//   - v2: root holds cgroup.controllers; CPU and memory are read there.
//   - v1: a directory whose comma-separated name holds "cpuacct" ("cpuacct", "cpu,cpuacct",
//     "cpuacct,cpu", possibly a symlink) and one holding "memory".
//   - hybrid: v1 plus a cgroup2 at root/unified. The v1 hierarchies are read (kubelet uses
//     them; the unified one has no controllers); the unified one only stands in for a
//     controller v1 lacks (cpu.stat exists in every v2 cgroup, memory.current only with the
//     memory controller).
func detectLayout(root string) (layout, error) {
	if isFile(filepath.Join(root, "cgroup.controllers")) {
		return layout{kind: layoutV2, hierarchies: []hierarchy{{dir: root, v2: true, cpu: true, mem: true}}}, nil
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return layout{}, fmt.Errorf("list cgroup hierarchies in %s: %w", root, err)
	}
	var cpuDir, memDir string
	for _, e := range entries { // sorted by name: deterministic
		controllers := strings.Split(e.Name(), ",")
		hasCPU, hasMem := slices.Contains(controllers, "cpuacct"), slices.Contains(controllers, "memory")
		if !hasCPU && !hasMem {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() { // follows a "cpuacct -> cpu,cpuacct" link
			continue
		}
		if hasCPU && cpuDir == "" {
			cpuDir = dir
		}
		if hasMem && memDir == "" {
			memDir = dir
		}
	}
	unified := filepath.Join(root, "unified")
	hasUnified := isFile(filepath.Join(unified, "cgroup.controllers"))
	if cpuDir == "" && memDir == "" {
		if hasUnified {
			return layout{kind: layoutHybrid, hierarchies: []hierarchy{{dir: unified, v2: true, cpu: true, mem: true}}}, nil
		}
		return layout{}, errors.New("no cgroup hierarchy in " + root +
			": neither cgroup.controllers (v2) nor a cpuacct or memory directory (v1)")
	}
	l := layout{kind: layoutV1}
	if hasUnified {
		l.kind = layoutHybrid
	}
	if cpuDir != "" && cpuDir == memDir {
		l.hierarchies = append(l.hierarchies, hierarchy{dir: cpuDir, cpu: true, mem: true})
	} else {
		if cpuDir != "" {
			l.hierarchies = append(l.hierarchies, hierarchy{dir: cpuDir, cpu: true})
		}
		if memDir != "" {
			l.hierarchies = append(l.hierarchies, hierarchy{dir: memDir, mem: true})
		}
	}
	if hasUnified && (cpuDir == "" || memDir == "") {
		l.hierarchies = append(l.hierarchies, hierarchy{dir: unified, v2: true, cpu: cpuDir == "", mem: memDir == ""})
	}
	return l, nil
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
