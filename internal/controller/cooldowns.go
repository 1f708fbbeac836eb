package controller

import (
	"context"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

// cooldowns keeps each pod's last threshold trigger for the metrics-server watcher.
// The API server is the source of truth (status.lastTriggers, written by the
// ProfileCapture controller before it captures), and the reconciler loads what is
// there, so a restart or a new leader never re-triggers a pod inside its cooldown.
type cooldowns struct {
	mu   sync.Mutex
	last map[string]map[types.UID]time.Time // group -> pod UID -> trigger time
}

func newCooldowns() *cooldowns {
	return &cooldowns{last: map[string]map[types.UID]time.Time{}}
}

// load merges what status says into memory (keeping the later time of each pod).
func (c *cooldowns) load(group string, pc *profilingv1alpha1.ProfilingConfig) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.last[group]
	if m == nil {
		m = map[types.UID]time.Time{}
		c.last[group] = m
	}
	for _, tr := range pc.Status.LastTriggers {
		uid := types.UID(tr.UID)
		if tr.Time.After(m[uid]) {
			m[uid] = tr.Time.Time
		}
	}
}

func (c *cooldowns) forget(group string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.last, group)
}

// LastTrigger implements trigger.CooldownStore.
func (c *cooldowns) LastTrigger(group string, uid types.UID) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last[group][uid]
}

// Record implements trigger.CooldownStore. It only remembers the trigger, rounded up
// to the second as status keeps it: the ProfileCapture the watcher creates next
// records it in the config's status.lastTriggers when it is executed.
func (c *cooldowns) Record(_ context.Context, group string, pod *corev1.Pod, at time.Time, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last[group] == nil {
		c.last[group] = map[types.UID]time.Time{}
	}
	if t := ceilSecond(at).Time; t.After(c.last[group][pod.UID]) {
		c.last[group][pod.UID] = t
	}
	return nil
}

// withTrigger upserts tr and bounds the list: entries still in their cooldown are
// kept first, then the most recent others, newest first, at most MaxLastTriggers.
func withTrigger(list []profilingv1alpha1.PodTrigger, tr profilingv1alpha1.PodTrigger, now time.Time, cooldown time.Duration) []profilingv1alpha1.PodTrigger {
	out := make([]profilingv1alpha1.PodTrigger, 0, len(list)+1)
	out = append(out, tr)
	for _, e := range list {
		if e.UID != tr.UID {
			out = append(out, e)
		}
	}
	inCooldown := func(e profilingv1alpha1.PodTrigger) bool { return e.Time.Add(cooldown).After(now) }
	sort.SliceStable(out, func(i, j int) bool {
		ci, cj := inCooldown(out[i]), inCooldown(out[j])
		if ci != cj {
			return ci
		}
		return out[i].Time.After(out[j].Time.Time)
	})
	if len(out) > profilingv1alpha1.MaxLastTriggers {
		out = out[:profilingv1alpha1.MaxLastTriggers]
	}
	return out
}

// ceilSecond rounds up to the second metav1.Time keeps, so a cooldown read back after
// a restart never ends earlier than the real one.
func ceilSecond(t time.Time) metav1.Time {
	c := t.Truncate(time.Second)
	if c.Before(t) {
		c = c.Add(time.Second)
	}
	return metav1.NewTime(c)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
