// Package threshold catches a spike in the act: it reads pod usage from
// metrics.k8s.io at an interval, compares every container's CPU and memory with
// a percentage of its request (or limit), and triggers a capture of a pod whose
// usage reaches the threshold, at most once per cooldown. The cooldown is
// persisted (CooldownStore) before a capture starts, so a restart or a leader
// change never re-triggers inside it. When metrics.k8s.io is missing or failing
// the watcher reports it and keeps trying; scheduled captures are not its
// concern and go on.
package threshold
