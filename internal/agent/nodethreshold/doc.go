// Package nodethreshold evaluates the thresholds of the ProfilingConfigs on the node, at
// the resolution of the agent's cgroup readings (1 s), and creates a ProfileCapture when
// a pod of this node crosses one. The semantics are the operator's, from one
// implementation (internal/threshold.Evaluate): request or limit basis, selected
// containers, exact percentages, uncomputable containers reported.
//
// Inputs:
//   - the readings of internal/agent/usage (Observe): container.cpu.time counters and
//     container.memory.usage gauges labelled pod_uid, container_id and, when the pod
//     informer matched the container ID, container;
//   - this node's pods (PodSource: the attributor's node-scoped pod informer);
//   - the ProfilingConfigs, from a read-only informer of its own.
//
// Usage: a container's CPU usage is the growth of its CPU counter over the last reading
// interval divided by that interval (cores, as nanocores). A counter seen for the first
// time, or whose start changed or whose value went backwards (a recreated cgroup), has
// no usage in that reading: the next reading gives one. Memory usage is the gauge as
// read (memory.usage_in_bytes / memory.current: page cache included, where
// metrics-server reports the working set). A container is known by name only once the
// pod's status lists its container ID; until then it has no usage (the pod's sandbox
// and unnamed cgroups are never guessed at).
//
// Selection is the operator's: a ProfilingConfig whose thresholds are enabled with
// source agent, auto or empty selects the pods of its selector's namespace (empty: its
// own) matching its label selector that internal/podtarget.Select accepts (annotated
// profiling.io/enabled "true", Running, Ready, with a pod IP). Only pods with a named
// container in the reading are evaluated (and reported uncomputable): a pod of another
// node, or without cgroups here, is not this agent's.
//
// Suppression: no ProfileCapture for a (config, pod) while the config's
// status.lastTriggers puts the pod in its cooldown ("cooldown"), while this agent created
// one for it less than the cooldown ago ("recent"), while its previous create failed less
// than a backoff ago ("backoff", exponential), or while a create for it is running
// ("inflight"). So a flapping pod makes at most one capture per cooldown; the operator,
// owner of the cooldown, still skips one that arrives inside it.
//
// An API server refusing the ProfilingConfig watch or a ProfileCapture create with
// Forbidden is logged in one line naming the missing permission and shown by the gauge
// kprof_agent_node_thresholds_forbidden{operation}.
package nodethreshold
