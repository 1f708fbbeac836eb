package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

// syncStates remembers, per config, what the last full reconcile synced and the
// status last written, so that a reconcile woken only by capture results folds them
// into status without selecting every pod again, and status is written only when it
// changed.
type syncStates struct {
	mu     sync.Mutex
	states map[string]*syncState
}

type syncState struct {
	uid        types.UID
	generation int64 // of the last full sync; 0: none yet
	dirty      bool  // pods, agents, store health or metrics changed since
	// written is the status this operator last wrote (its own fields), nil until then:
	// the base of the next write, fresher than a cache that may not have seen it yet;
	// writtenRV is the config's resourceVersion that write produced.
	written   *profilingv1alpha1.ProfilingConfigStatus
	writtenRV string
}

func newSyncStates() *syncStates { return &syncStates{states: map[string]*syncState{}} }

// state returns group's state for the config uid, new when uid changed. Call with mu held.
func (s *syncStates) state(group string, uid types.UID) *syncState {
	st := s.states[group]
	if st == nil || st.uid != uid {
		st = &syncState{uid: uid}
		s.states[group] = st
	}
	return st
}

// beginFull reports whether the reconcile of group must select its pods again: on the
// first reconcile, after a spec change, or when something it depends on changed. It
// clears the mark; a failed full reconcile sets it again (markDirty).
func (s *syncStates) beginFull(group string, uid types.UID, generation int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(group, uid)
	full := st.dirty || st.generation != generation
	st.dirty = false
	return full
}

// synced records a successful full reconcile of generation.
func (s *syncStates) synced(group string, uid types.UID, generation int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state(group, uid).generation = generation
}

// markDirty makes the next reconcile of each group a full one.
func (s *syncStates) markDirty(groups ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range groups {
		if st := s.states[g]; st != nil {
			st.dirty = true
		}
	}
}

// lastWritten returns a copy of the status last written for the config uid and the
// resourceVersion it produced, nil if none.
func (s *syncStates) lastWritten(group string, uid types.UID) (*profilingv1alpha1.ProfilingConfigStatus, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.states[group]; st != nil && st.uid == uid && st.written != nil {
		return st.written.DeepCopy(), st.writtenRV
	}
	return nil, ""
}

func (s *syncStates) setWritten(group string, uid types.UID, status *profilingv1alpha1.ProfilingConfigStatus, resourceVersion string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(group, uid)
	st.written, st.writtenRV = status.DeepCopy(), resourceVersion
}

// forgetWritten makes the next write start from the cache's copy: someone else
// wrote the status since this operator did.
func (s *syncStates) forgetWritten(group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.states[group]; st != nil {
		st.written, st.writtenRV = nil, ""
	}
}

func (s *syncStates) forget(group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.states, group)
}
