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
	Group  string
	Target Target
	Type   ProfileType
	Reason string
	Key    string // storage key, when stored
	// Location is where the profile is stored (s3://bucket/key, file:///path), when stored.
	Location string
	Bytes    int
	// SHA256 of the stored bytes, hex, when stored.
	SHA256   string
	Started  time.Time
	Duration time.Duration
	Err      error
	// FailureReason is a short CamelCase reason for a failed capture (Timeout,
	// HTTPStatus, TooLarge, NotPprof, StoreFailed, Canceled, ConnectFailed), empty on success.
	FailureReason string
}

// MinInterval is the shortest scheduled Interval a policy may ask for.
const MinInterval = 10 * time.Millisecond

// Reasons the engine puts in Result.Reason and storage.Meta.Reason.
const (
	ReasonSchedule = "schedule" // a scheduled round
	ReasonManual   = "manual"   // CaptureNow without a reason
)

// Failure reasons reported in Result.FailureReason and the failures metric.
const (
	FailureTimeout       = "Timeout"       // the request or the body read exceeded its deadline
	FailureHTTPStatus    = "HTTPStatus"    // the target answered with a non-2xx status
	FailureTooLarge      = "TooLarge"      // the body (or its decompressed form) exceeded the size limit
	FailureNotPprof      = "NotPprof"      // the body does not parse as a pprof profile
	FailureStoreFailed   = "StoreFailed"   // the store rejected the profile
	FailureCanceled      = "Canceled"      // the target was removed or the engine shut down
	FailureConnectFailed = "ConnectFailed" // connection refused, no route, DNS failure
	FailureFetchFailed   = "FetchFailed"   // any other transport error (reset mid-body, TLS, bad URL)
	FailureInvalidPolicy = "InvalidPolicy" // CaptureNow was given a policy that fails Validate
)

// Name identifies t in errors and logs: Meta.Target, else namespace/pod, else ID.
func (t Target) Name() string {
	switch {
	case t.Meta.Target != "":
		return t.Meta.Target
	case t.Meta.Namespace != "" && t.Meta.Pod != "":
		return t.Meta.Namespace + "/" + t.Meta.Pod
	case t.Meta.Pod != "":
		return t.Meta.Pod
	}
	return t.ID
}

// Validate reports the first problem that makes p unusable: no or unknown or
// repeated types, a negative duration, no store or a bad key template.
func (p Policy) Validate() error {
	if len(p.Types) == 0 {
		return fmt.Errorf("policy: Types is empty")
	}
	seen := make(map[ProfileType]bool, len(p.Types))
	for _, t := range p.Types {
		if _, err := ParseProfileType(string(t)); err != nil {
			return fmt.Errorf("policy: Types: %w", err)
		}
		if seen[t] {
			return fmt.Errorf("policy: Types: %s listed twice", t)
		}
		seen[t] = true
	}
	if p.CPUDuration < 0 {
		return fmt.Errorf("policy: CPUDuration %s is negative", p.CPUDuration)
	}
	if p.Interval < 0 || (p.Interval > 0 && p.Interval < MinInterval) {
		return fmt.Errorf("policy: Interval %s must be 0 (no scheduled capture) or at least %s", p.Interval, MinInterval)
	}
	if p.Store == nil {
		return fmt.Errorf("policy: Store is required")
	}
	if p.KeyTemplate != "" {
		if err := storage.ValidateKeyTemplate(p.KeyTemplate); err != nil {
			return fmt.Errorf("policy: KeyTemplate: %w", err)
		}
	}
	return nil
}
