package usage

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kprof/kprof/internal/agent/attribute"
)

// isKubepodsRoot recognises the top of kubelet's pod tree: "kubepods" (cgroupfs driver),
// "kubepods.slice" (systemd driver) and "<prefix>-kubepods.slice" (systemd driver with a
// cgroup root such as kind's "kubelet.slice/kubelet-kubepods.slice").
func isKubepodsRoot(name string) bool {
	return name == "kubepods" || name == "kubepods.slice" || strings.HasSuffix(name, "-kubepods.slice")
}

// vanished tells whether err means the cgroup is gone: ENOENT, or ENODEV from a file of a
// cgroup removed after it was opened.
func vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV)
}

// listDirs lists the subdirectories of dir, sorted by name.
func listDirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs, nil
}

// searchResult is the kubepods trees found in one hierarchy.
type searchResult struct {
	roots     []string
	truncated bool // the search stopped at the bound
	errs      []error
}

// findKubepods searches hierarchy directory top breadth-first for kubepods trees, not
// descending into the trees it finds, listing at most max directories.
func findKubepods(top string, max int) searchResult {
	var res searchResult
	queue := []string{top}
	for len(queue) > 0 {
		if max == 0 {
			res.truncated = true
			return res
		}
		max--
		dir := queue[0]
		queue = queue[1:]
		names, err := listDirs(dir)
		if err != nil {
			if !vanished(err) {
				res.errs = append(res.errs, err)
			}
			continue
		}
		for _, name := range names {
			if isKubepodsRoot(name) {
				res.roots = append(res.roots, filepath.Join(dir, name))
			} else {
				queue = append(queue, filepath.Join(dir, name))
			}
		}
	}
	return res
}

// cgroupKind says what a found cgroup is.
type cgroupKind int

const (
	podCgroup cgroupKind = iota
	containerCgroup
)

// found is one pod or container cgroup in one hierarchy.
type found struct {
	kind        cgroupKind
	podUID      string // "" for a container whose path names no pod
	containerID string // "" for a pod
	dir         string
}

// key identifies the pod or container across hierarchies (v1 paths may differ between the
// cpuacct and memory hierarchies) and readings.
func (f found) key() string {
	if f.kind == podCgroup {
		return "pod/" + f.podUID
	}
	return "container/" + f.containerID
}

// walkResult is what one walk of the kubepods trees of a hierarchy found.
type walkResult struct {
	cgroups   []found
	truncated bool
	gone      bool // a kubepods tree itself vanished: search again
	errs      []error
}

// walkKubepods walks the kubepods trees roots depth-first, visiting at most max
// directories. A directory whose path below the tree's parent names a container (by
// attribute.ParseCgroup) is a container cgroup and is not descended into (CRI-O's
// "container" sub-cgroup is counted in its scope); the first directory on a path that
// names a pod UID is the pod cgroup; other directories (QoS classes, CRI-O's conmon
// scope) are descended into.
func walkKubepods(roots []string, max int) walkResult {
	type node struct {
		dir, rel  string // rel: the path from the kubepods tree's parent, "/kubepods/..."
		parentUID string
		root      bool
	}
	var res walkResult
	seen := map[string]bool{}
	var stack []node
	for i := len(roots) - 1; i >= 0; i-- {
		stack = append(stack, node{dir: roots[i], rel: "/" + filepath.Base(roots[i]), root: true})
	}
	for len(stack) > 0 {
		if max == 0 {
			res.truncated = true
			return res
		}
		max--
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		id, _, uid := attribute.ParseCgroup([]byte("0::" + n.rel + "\n"))
		switch {
		case id != "":
			f := found{kind: containerCgroup, podUID: uid, containerID: id, dir: n.dir}
			if !seen[f.key()] { // the same ID twice (two kubepods trees): the first wins
				seen[f.key()] = true
				res.cgroups = append(res.cgroups, f)
			}
			continue
		case uid != "" && n.parentUID == "":
			f := found{kind: podCgroup, podUID: uid, dir: n.dir}
			if !seen[f.key()] {
				seen[f.key()] = true
				res.cgroups = append(res.cgroups, f)
			}
		}
		names, err := listDirs(n.dir)
		if err != nil {
			switch {
			case !vanished(err):
				res.errs = append(res.errs, err)
			case n.root:
				res.gone = true
			}
			continue
		}
		for i := len(names) - 1; i >= 0; i-- {
			stack = append(stack, node{dir: filepath.Join(n.dir, names[i]), rel: n.rel + "/" + names[i], parentUID: uid})
		}
	}
	return res
}
