package controller

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/threshold"
)

// cooldowns keeps each pod's last threshold trigger for the metrics-server watcher.
// The API server is the source of truth (status.lastTriggers: written by RecordAll,
// one patch per check, before the watcher creates the check's ProfileCaptures, and
// by the ProfileCapture controller for the captures of agents and users), and the
// reconciler loads what is there, so a restart or a new leader never re-triggers a
// pod inside its cooldown.
type cooldowns struct {
	// reader (uncached) and writer persist a check's triggers in status.lastTriggers
	// (RecordAll); nil: memory only.
	reader client.Reader
	writer client.Client

	mu   sync.Mutex
	last map[string]map[types.UID]time.Time // group -> pod UID -> trigger time
}

func newCooldowns(reader client.Reader, writer client.Client) *cooldowns {
	return &cooldowns{reader: reader, writer: writer, last: map[string]map[types.UID]time.Time{}}
}

var _ threshold.BatchRecorder = (*cooldowns)(nil)

// RecordAll implements threshold.BatchRecorder: it remembers the triggers of one check
// and writes them all into the config's status.lastTriggers in one status patch,
// each naming the ProfileCapture the watcher creates next (ThresholdCaptureName), so
// the ProfileCapture controller finds its trigger recorded and writes nothing. A pod
// whose status entry (e.g. from an agent's capture) puts it inside its cooldown keeps
// that entry: its capture is then skipped as InCooldown.
func (c *cooldowns) RecordAll(ctx context.Context, group string, triggers []threshold.Record) error {
	if c.writer != nil {
		if err := c.persist(ctx, group, triggers); err != nil {
			return err
		}
	}
	for _, tr := range triggers {
		if err := c.Record(ctx, group, tr.Pod, tr.At, tr.Reason); err != nil {
			return err
		}
	}
	return nil
}

func (c *cooldowns) persist(ctx context.Context, group string, triggers []threshold.Record) error {
	ns, name := splitGroup(group)
	key := types.NamespacedName{Namespace: ns, Name: name}
	var lastErr error
	for attempt := 0; attempt < 8; attempt++ {
		var pc profilingv1alpha1.ProfilingConfig
		if err := c.reader.Get(ctx, key, &pc); err != nil {
			return fmt.Errorf("read cooldowns of ProfilingConfig %s: %w", group, err)
		}
		var cooldown time.Duration
		if pc.Spec.Thresholds != nil {
			cooldown = time.Duration(pc.Spec.Thresholds.CooldownSeconds) * time.Second
		}
		orig := pc.DeepCopy()
		now := time.Now()
		list := pc.Status.LastTriggers
		for _, tr := range triggers {
			at := ceilSecond(tr.At)
			name := ThresholdCaptureName(tr.Pod, tr.At)
			if _, skip := cooldownVerdict(list, tr.Pod.UID, name, cooldown, at.Time); skip != "" {
				continue
			}
			list = withTrigger(list, profilingv1alpha1.PodTrigger{
				Pod: tr.Pod.Name, UID: string(tr.Pod.UID), Time: at, Reason: truncate(tr.Reason, 256), Capture: name,
			}, now, cooldown)
		}
		pc.Status.LastTriggers = list
		err := c.writer.Status().Patch(ctx, &pc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("record %d triggers in ProfilingConfig %s: %w", len(triggers), group, err)
		}
		lastErr = err
	}
	return fmt.Errorf("record %d triggers in ProfilingConfig %s: still conflicting: %w", len(triggers), group, lastErr)
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

// LastTrigger implements threshold.CooldownStore.
func (c *cooldowns) LastTrigger(group string, uid types.UID) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last[group][uid]
}

// Record implements threshold.CooldownStore. It only remembers the trigger, rounded up
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
