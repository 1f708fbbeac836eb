// Package usage reads per-pod and per-container CPU and memory usage from the node's
// cgroups and hands it to the agent as profile.Metrics: container.cpu.time and
// k8s.pod.cpu.time (Counter, seconds), container.memory.usage and k8s.pod.memory.usage
// (Gauge, bytes).
//
// Layouts: cgroup v2 (cgroup.controllers at Root), v1 (a cpuacct hierarchy, alone or
// co-mounted as "cpu,cpuacct", and a memory hierarchy under Root) and hybrid (v1
// controllers plus Root/unified; the v1 hierarchies are read, the unified one only for
// what v1 lacks). Only kubelet's pod trees are walked ("kubepods" for the cgroupfs
// driver, "kubepods.slice" or "<prefix>-kubepods.slice" for the systemd driver), found
// at any depth below a hierarchy's root (kind nests them under the node container) and
// looked for again every minute. Pod and container cgroups are told apart by the path
// parser of the attribute package, applied to the path below the kubepods tree.
//
// Values: CPU from cpu.stat usage_usec (v2) or cpuacct.usage (v1, ns); memory from
// memory.current (v2) or memory.usage_in_bytes (v1), as is: inactive_file (page cache
// the kernel may reclaim) is not subtracted, because the semantic conventions'
// container.memory.usage is the total usage; a working set is a different metric.
//
// A counter's Start is the reading in which this Reader first saw the cgroup (the kernel
// does not say when a cgroup was created), so the first value of a counter already holds
// the CPU used before. A counter that goes backwards (a container ID or pod UID whose
// cgroup was recreated) or that comes back after a reading without it starts again with
// a new Start.
//
// Readings are bounded: at most Config.MaxCgroups cgroup directories per hierarchy, and
// every file read with a small size limit. A cgroup that vanishes while read (a
// container exiting) is left out quietly; a malformed file is counted (Stats) and logged
// at most once a minute, never fatal.
package usage
