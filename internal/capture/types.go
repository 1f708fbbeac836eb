// Package capture is the engine shared by the operator and local mode: it schedules
// targets, fetches their pprof endpoints, validates what they serve and hands the
// unchanged bytes to a storage.Store.
package capture

import (
	"fmt"
	"time"

	"github.com/kprof/kprof/internal/storage"
)

// ProfileType is one Go pprof endpoint.
type ProfileType string

const (
	TypeCPU          ProfileType = "cpu"
	TypeHeap         ProfileType = "heap"
	TypeGoroutine    ProfileType = "goroutine"
	TypeMutex        ProfileType = "mutex"
	TypeBlock        ProfileType = "block"
	TypeAllocs       ProfileType = "allocs"
	TypeThreadCreate ProfileType = "threadcreate"
)

// AllTypes lists every supported profile type, in capture order.
var AllTypes = []ProfileType{TypeCPU, TypeHeap, TypeGoroutine, TypeMutex, TypeBlock, TypeAllocs, TypeThreadCreate}

// Endpoint returns the path below the pprof prefix that serves t.
func (t ProfileType) Endpoint() string {
	if t == TypeCPU {
		return "profile"
	}
	return string(t)
}

// ParseProfileType validates a profile type name.
func ParseProfileType(s string) (ProfileType, error) {
	for _, t := range AllTypes {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown profile type %q (want one of cpu, heap, goroutine, mutex, block, allocs, threadcreate)", s)
}

// Target is where to fetch pprof and who it is.
type Target struct {
	// ID is unique within a policy group and stable across syncs (pod UID, or a name in local mode).
	ID string
	// BaseURL is the pprof prefix, e.g. http://10.1.2.3:6060/debug/pprof (no trailing slash needed).
	BaseURL string
	// Meta is copied into every stored profile's metadata (Type, Reason, CapturedAt are filled in by the engine).
	Meta storage.Meta
}

// Policy says which types, how often, and where to store.
type Policy struct {
	Types       []ProfileType
	CPUDuration time.Duration
	// Interval between scheduled rounds of one target; 0 disables scheduled capture.
	Interval    time.Duration
	Store       storage.Store
	KeyTemplate string // storage.DefaultKeyTemplate when empty
	KeyPrefix   string
}

// Result reports one capture attempt of one type of one target.
type Result struct {
	Group    string
	Target   Target
	Type     ProfileType
	Reason   string
	Key      string // storage key, when stored
	Bytes    int
	Started  time.Time
	Duration time.Duration
	Err      error
	// FailureReason is a short CamelCase reason for a failed capture (Timeout,
	// HTTPStatus, TooLarge, NotPprof, StoreFailed, Canceled, ConnectFailed), empty on success.
	FailureReason string
}
