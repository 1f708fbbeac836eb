package threshold

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// batchCooldowns is fakeCooldowns that also persists a check's triggers in one call.
type batchCooldowns struct {
	*fakeCooldowns
	batches [][]string // pod names of each RecordAll
}

func (s *batchCooldowns) RecordAll(ctx context.Context, group string, triggers []Record) error {
	s.journal.add("record-all %s %d", group, len(triggers))
	var pods []string
	for _, tr := range triggers {
		if !tr.At.Equal(triggers[0].At) {
			return fmt.Errorf("triggers of one check at %s and %s", triggers[0].At, tr.At)
		}
		pods = append(pods, tr.Pod.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.batches = append(s.batches, pods)
	for _, tr := range triggers {
		s.records = append(s.records, recordCall{group, tr.Pod.Name, tr.At, tr.Reason})
		if s.last == nil {
			s.last = map[types.UID]time.Time{}
		}
		s.last[tr.Pod.UID] = tr.At
	}
	return nil
}

// newBatchHarness is a harness whose store records a check's triggers in one call.
func newBatchHarness(t *testing.T) (*harness, *batchCooldowns) {
	var store *batchCooldowns
	h := newHarness(t, func(c *Config) {
		store = &batchCooldowns{fakeCooldowns: c.Cooldowns.(*fakeCooldowns)}
		c.Cooldowns = store
	})
	return h, store
}

func TestABatchStoreRecordsEveryTriggerOfACheckInOneWriteBeforeAnyCapture(t *testing.T) {
	h, store := newBatchHarness(t)

	usage := map[string]PodUsage{}
	var targets []Target
	for i := range 5 {
		name := fmt.Sprintf("web-%d", i)
		usage[name] = sample(name, "930m", "100Mi")
		targets = append(targets, target(hotPod(name)))
	}
	usage["web-cool"] = sample("web-cool", "100m", "100Mi")
	targets = append(targets, target(hotPod("web-cool")))
	h.source.set(usage, nil)
	h.w.Sync(grp, policy(), targets)
	h.start(t)
	h.check(t)
	h.idle(t, grp)

	calls := h.journal.snapshot()
	if len(calls) != 6 || calls[0] != "record-all "+grp+" 5" {
		t.Fatalf("calls = %q, want one record-all of the 5 crossing pods, then their 5 triggers", calls)
	}
	for _, c := range calls[1:] {
		if !strings.HasPrefix(c, "trigger ") {
			t.Errorf("call %q after the batch, want only triggers", c)
		}
	}
	if len(store.batches) != 1 || slices.Contains(store.batches[0], "web-cool") {
		t.Errorf("batches %v, want one without the pod below its threshold", store.batches)
	}

	t.Run("the next check is held by the cooldown of every pod of the batch", func(t *testing.T) {
		h.check(t)
		h.idle(t, grp)
		if got := len(h.capturer.returnedCalls()); got != 5 {
			t.Errorf("%d triggers after two checks, want 5", got)
		}
	})
}

func TestAFailedBatchRecordStartsNoCaptureOfTheCheck(t *testing.T) {
	h, store := newBatchHarness(t)
	store.setErr(errors.New("status patch: connection refused"))
	h.source.set(map[string]PodUsage{"web-1": sample("web-1", "930m", ""), "web-2": sample("web-2", "950m", "")}, nil)
	h.w.Sync(grp, policy(), []Target{target(hotPod("web-1")), target(hotPod("web-2"))})
	h.start(t)
	h.check(t)
	if got := h.journal.snapshot(); len(got) != 1 || !strings.HasPrefix(got[0], "record-all ") {
		t.Errorf("calls = %q, want a single record-all attempt and no trigger", got)
	}
	store.setErr(nil)
	h.check(t)
	h.idle(t, grp)
	if got := len(h.capturer.returnedCalls()); got != 2 {
		t.Errorf("%d triggers after the store recovered, want 2", got)
	}
}
