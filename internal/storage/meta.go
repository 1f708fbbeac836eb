package storage

import (
	"encoding/json"
	"fmt"
	"time"
)

// The metadata vocabulary: the names under which a profile's Meta is stored, the
// same in S3 object metadata (x-amz-meta-<name>) and in the fs store's and the
// spool's JSON sidecars. S3 metadata holds labels as label-<key> entries, a sidecar
// as one "labels" object.
const (
	MetaNamespace  = "namespace"
	MetaPod        = "pod"
	MetaNode       = "node"
	MetaService    = "service"
	MetaContainer  = "container"
	MetaTarget     = "target"
	MetaConfig     = "config"
	MetaReason     = "reason"
	MetaType       = "type"
	MetaCapturedAt = "captured-at" // RFC 3339 with nanoseconds, UTC
	MetaDuration   = "duration"    // a Go duration ("30s"), CPU profiles only
	MetaLabels     = "labels"
)

// Meta describes one stored profile. It is written beside the profile (fs, spool)
// or as object metadata (s3) under the names above, and feeds the key template.
type Meta struct {
	Namespace  string
	Pod        string
	Node       string
	Service    string
	Container  string
	Target     string            // target name (local mode) or namespace/pod
	Config     string            // policy that caused the capture (namespace/name of a ProfilingConfig)
	Reason     string            // "schedule", "threshold: cpu 93% of request >= 80%", "manual"
	Type       string            // cpu, heap, goroutine, ...
	CapturedAt time.Time         // when the capture started
	Duration   time.Duration     // CPU profile length, when relevant
	Labels     map[string]string // the target's labels
}

// metaJSON is Meta as a sidecar writes it.
type metaJSON struct {
	Namespace  string            `json:"namespace,omitempty"`
	Pod        string            `json:"pod,omitempty"`
	Node       string            `json:"node,omitempty"`
	Service    string            `json:"service,omitempty"`
	Container  string            `json:"container,omitempty"`
	Target     string            `json:"target,omitempty"`
	Config     string            `json:"config,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Type       string            `json:"type"`
	CapturedAt string            `json:"captured-at,omitempty"`
	Duration   string            `json:"duration,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`

	// Names of sidecars written before the vocabulary was shared with S3; read, never written.
	OldCapturedAt *time.Time `json:"capturedAt,omitempty"`
	OldDuration   int64      `json:"durationNanos,omitempty"`
}

// CapturedAtString is m.CapturedAt as stored: RFC 3339 with nanoseconds in UTC, "" when zero.
func (m Meta) CapturedAtString() string {
	if m.CapturedAt.IsZero() {
		return ""
	}
	return m.CapturedAt.UTC().Format(time.RFC3339Nano)
}

// DurationString is m.Duration as stored ("30s"), "" when not positive.
func (m Meta) DurationString() string {
	if m.Duration <= 0 {
		return ""
	}
	return m.Duration.String()
}

// MarshalJSON writes m with the shared names (captured-at, duration).
func (m Meta) MarshalJSON() ([]byte, error) {
	return json.Marshal(metaJSON{
		Namespace: m.Namespace, Pod: m.Pod, Node: m.Node, Service: m.Service, Container: m.Container,
		Target: m.Target, Config: m.Config, Reason: m.Reason, Type: m.Type,
		CapturedAt: m.CapturedAtString(), Duration: m.DurationString(), Labels: m.Labels,
	})
}

// UnmarshalJSON reads the shared names, and capturedAt and durationNanos of older sidecars.
func (m *Meta) UnmarshalJSON(b []byte) error {
	var j metaJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = Meta{
		Namespace: j.Namespace, Pod: j.Pod, Node: j.Node, Service: j.Service, Container: j.Container,
		Target: j.Target, Config: j.Config, Reason: j.Reason, Type: j.Type, Labels: j.Labels,
		Duration: time.Duration(j.OldDuration),
	}
	switch {
	case j.CapturedAt != "":
		t, err := time.Parse(time.RFC3339Nano, j.CapturedAt)
		if err != nil {
			return fmt.Errorf("%s: %w", MetaCapturedAt, err)
		}
		m.CapturedAt = t
	case j.OldCapturedAt != nil:
		m.CapturedAt = *j.OldCapturedAt
	}
	if j.Duration != "" {
		d, err := time.ParseDuration(j.Duration)
		if err != nil {
			return fmt.Errorf("%s: %w", MetaDuration, err)
		}
		m.Duration = d
	}
	return nil
}
