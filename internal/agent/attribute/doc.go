// Package attribute tells which process, container and pod a sampled pid belongs to:
// pid → comm and executable (/proc/PID/comm, /proc/PID/exe) → container ID, runtime and
// pod UID (parsed from /proc/PID/cgroup, cgroup v1 and v2, containerd, CRI-O and Docker
// path formats) → pod name, namespace and container name (from a pod informer that
// watches only this node's pods). Without a cluster the pod step is left out.
//
// The Attributor is read on the sampling path: Labels never waits for the API server, and
// /proc reads are cached per pid with a size bound and a TTL.
package attribute
