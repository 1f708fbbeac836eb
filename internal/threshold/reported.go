package threshold

import (
	"maps"
	"strings"
)

// Reported remembers the uncomputable problems last reported per pod (a pod, or a pod
// under a config), so that a problem set is reported once, and again only when it
// changes or comes back after the pod was fixed. The operator's Watcher and the node
// agent's thresholds both report through one.
type Reported[K comparable] map[K]string

// Changed records problems as key's and tells whether they should be reported: they
// differ from those last recorded. No problems forget key, so a recurrence is
// reported again.
func (r Reported[K]) Changed(key K, problems []string) bool {
	if len(problems) == 0 {
		delete(r, key)
		return false
	}
	joined := strings.Join(problems, "\n")
	if r[key] == joined {
		return false
	}
	r[key] = joined
	return true
}

// Retain forgets every key that keep does not hold: pods gone or no longer evaluated.
func (r Reported[K]) Retain(keep map[K]bool) {
	maps.DeleteFunc(r, func(k K, _ string) bool { return !keep[k] })
}
