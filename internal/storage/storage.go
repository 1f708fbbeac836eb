// Package storage defines where captured profiles go. A Store receives the bytes a
// target served (never re-encoded) together with metadata describing who and why.
package storage

import (
	"context"
	"time"
)

// Meta describes one stored profile. It is written beside the profile (fs) or as
// object metadata (s3), and feeds the key template.
type Meta struct {
	Namespace  string            `json:"namespace,omitempty"`
	Pod        string            `json:"pod,omitempty"`
	Node       string            `json:"node,omitempty"`
	Service    string            `json:"service,omitempty"`
	Container  string            `json:"container,omitempty"`
	Target     string            `json:"target,omitempty"` // target name (local mode) or namespace/pod
	Config     string            `json:"config,omitempty"` // policy that caused the capture (namespace/name of a ProfilingConfig)
	Reason     string            `json:"reason,omitempty"` // "schedule", "threshold: cpu 93% of request >= 80%", "manual"
	Type       string            `json:"type"`             // cpu, heap, goroutine, ...
	CapturedAt time.Time         `json:"capturedAt"`
	Duration   time.Duration     `json:"durationNanos,omitempty"` // CPU profile length, when relevant
	Labels     map[string]string `json:"labels,omitempty"`
}

// Store persists profiles. Put must either store the whole profile under key or
// leave nothing behind that looks like a profile (no half-written objects).
type Store interface {
	// Put stores data under key with meta. data is what the target served.
	Put(ctx context.Context, key string, data []byte, meta Meta) error
	// String names the store for logs and status ("fs:/var/lib/kprof", "s3://bucket/prefix").
	String() string
}
