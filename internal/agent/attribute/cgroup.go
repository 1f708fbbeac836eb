package attribute

import (
	"bytes"
	"strings"
)

// Container runtimes, as Process.Runtime names them.
const (
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimeDocker     = "docker"
)

const (
	// maxCgroupFile bounds how much of a /proc/PID/cgroup file is read and parsed. Real
	// files are a few KiB even with a dozen v1 hierarchies and deep paths.
	maxCgroupFile = 64 << 10
	// maxCgroupLine bounds one "hierarchy-ID:controllers:path" line: PATH_MAX plus room
	// for the controller list.
	maxCgroupLine = 4096 + 256
)

// containerScopes are the name prefixes the systemd cgroup driver (and CRI-O's cgroupfs
// driver) give a container's cgroup: "<prefix><64 hex>[.scope]".
var containerScopes = []struct{ prefix, runtime string }{
	{"cri-containerd-", RuntimeContainerd},
	{"crio-", RuntimeCRIO},
	{"docker-", RuntimeDocker},
}

// ParseCgroup finds the container a process runs in from the content of its
// /proc/PID/cgroup: cgroup v1 (one "N:controllers:/path" line per hierarchy) and v2
// ("0::/path"). It knows the path formats of
//
//   - the systemd driver: ".../kubepods-burstable-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope",
//     "crio-<id>.scope" (also with a "/container" sub-cgroup), "docker-<id>.scope";
//   - the cgroupfs driver: "/kubepods/burstable/pod<uid>/<id>", CRI-O's ".../pod<uid>/crio-<id>";
//   - plain Docker: "/docker/<id>";
//   - nesting (kind, k3s in Docker: "/docker/<node>/kubelet/kubepods/...", "/kubelet.slice/..."),
//     where the deepest container wins, and the "/../" prefixes a cgroup namespace shows.
//
// The container ID is 64 lowercase hex digits; runtime is RuntimeContainerd, RuntimeCRIO or
// RuntimeDocker when the path says so and "" when it does not (the cgroupfs driver names
// every runtime's containers the same); podUID is the pod's UID (dashes restored) when the
// path has a pod cgroup. All three are "" for a host process. Only the first 64 KiB of
// data are read, and lines longer than PATH_MAX are skipped.
func ParseCgroup(data []byte) (containerID, runtime, podUID string) {
	if len(data) > maxCgroupFile {
		// Parse whole lines only: a cut path could look like a shorter, wrong one.
		data = data[:maxCgroupFile]
		i := bytes.LastIndexByte(data, '\n')
		if i < 0 {
			return "", "", ""
		}
		data = data[:i]
	}
	var firstPodUID string
	for len(data) > 0 {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(line) > maxCgroupLine {
			continue
		}
		_, rest, ok := bytes.Cut(line, []byte{':'}) // hierarchy ID
		if !ok {
			continue
		}
		_, path, ok := bytes.Cut(rest, []byte{':'}) // controller list; the path may hold ':'
		if !ok {
			continue
		}
		id, rt, uid := parseCgroupPath(strings.TrimSpace(string(path)))
		if id != "" {
			return id, rt, uid
		}
		if firstPodUID == "" {
			firstPodUID = uid
		}
	}
	return "", "", firstPodUID
}

// parseCgroupPath finds the deepest container component of one cgroup path and the
// nearest pod component above it.
func parseCgroupPath(path string) (containerID, runtime, podUID string) {
	parts := strings.Split(path, "/")
	end := len(parts)
	for i := len(parts) - 1; i >= 0; i-- {
		parent := ""
		if i > 0 {
			parent = parts[i-1]
		}
		if id, rt, ok := containerComponent(parts[i], parent); ok {
			containerID, runtime, end = id, rt, i
			break
		}
	}
	for i := end - 1; i >= 0; i-- {
		if uid, ok := podComponent(parts[i]); ok {
			podUID = uid
			break
		}
	}
	return containerID, runtime, podUID
}

// containerComponent recognises one path component that names a container.
func containerComponent(name, parent string) (id, runtime string, ok bool) {
	base, scope := strings.CutSuffix(name, ".scope")
	for _, s := range containerScopes {
		if rest, found := strings.CutPrefix(base, s.prefix); found && isHex(rest, 64) {
			return rest, s.runtime, true
		}
	}
	if scope || !isHex(name, 64) {
		return "", "", false
	}
	if parent == "docker" {
		return name, RuntimeDocker, true
	}
	return name, "", true
}

// podComponent recognises a pod cgroup: "pod<uid>" (cgroupfs driver) or
// "kubepods[-<qos>]-pod<uid_with_underscores>.slice" (systemd driver, also prefixed
// "kubelet-" by kind).
func podComponent(name string) (uid string, ok bool) {
	if slice, found := strings.CutSuffix(name, ".slice"); found {
		i := strings.LastIndex(slice, "-pod")
		if i < 0 {
			return "", false
		}
		uid = strings.ReplaceAll(slice[i+len("-pod"):], "_", "-")
	} else if uid, ok = strings.CutPrefix(name, "pod"); !ok {
		return "", false
	}
	if !isPodUID(uid) {
		return "", false
	}
	return uid, true
}

// isPodUID accepts a UUID (API-created pods) or 32 hex digits (static pods' config hash).
func isPodUID(s string) bool {
	if isHex(s, 32) {
		return true
	}
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHexDigit(s[i]) {
				return false
			}
		}
	}
	return true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
