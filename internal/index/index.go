// Package index lists the profiles kprof stored, in a local directory (local mode's
// ./profiles, the operator's localStorage, the agent's pprof files) or under an S3
// prefix, without reading the profiles themselves, and opens one by its ID with a
// size limit.
//
// Metadata comes from where each store keeps it: the fs store's JSON sidecars, the
// S3 store's index markers (storage.MarkerKey; one ListObjectsV2 page lists up to
// 1000 keys with their metadata), the agent's file names; for objects written before
// markers existed, the key parsed with the default key layout and a HEAD request
// (at most Config.MaxHeads per listing).
package index

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/storage"
)

// Defaults of Config.
const (
	DefaultStore    = "./profiles"
	DefaultTimeout  = 30 * time.Second
	DefaultMaxHeads = 1000
	// DefaultMaxProfileBytes bounds Open when the caller gives no limit.
	DefaultMaxProfileBytes int64 = 256 << 20
	// maxSidecarBytes bounds the read of one JSON sidecar.
	maxSidecarBytes = 64 << 10
)

// Triggers: why a profile was captured, from its reason.
const (
	TriggerSchedule  = "schedule"
	TriggerThreshold = "threshold"
	TriggerManual    = "manual"
)

// Errors of Open, wrapped with what was being opened.
var (
	ErrBadID    = errors.New("invalid profile ID")
	ErrNotFound = errors.New("no such profile")
	ErrTooLarge = errors.New("profile is larger than the limit")
	ErrEmpty    = errors.New("profile is empty (0 bytes)")
	ErrCorrupt  = errors.New("profile is not a valid pprof profile")
)

// Entry is one stored profile.
type Entry struct {
	// ID names the profile within its store (a relative slash-separated path); Open takes it.
	ID        string `json:"id"`
	Cluster   string `json:"cluster,omitempty"` // where known: the "cluster" label
	Namespace string `json:"namespace,omitempty"`
	Service   string `json:"service,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Container string `json:"container,omitempty"`
	Node      string `json:"node,omitempty"`
	Config    string `json:"config,omitempty"` // the policy (or agent collection config) that captured it
	Type      string `json:"type,omitempty"`
	// CapturedAt is when the capture started (zero when unknown).
	CapturedAt time.Time     `json:"capturedAt"`
	Duration   time.Duration `json:"durationNanos,omitempty"` // CPU profiles
	// Trigger is schedule, threshold or manual ("" when unknown); Reason the full reason.
	Trigger  string `json:"trigger,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Size     int64  `json:"size"`
	Location string `json:"location"` // file path or s3://bucket/key
	// Source says where the metadata came from: sidecar, marker, head, key, agent.
	Source string `json:"source"`
	// Error says why the metadata is incomplete ("" when it is not).
	Error string `json:"error,omitempty"`
}

// Filter selects entries; zero fields match everything.
type Filter struct {
	Namespace, Service, Pod, Type string
	// Reason matches the trigger exactly or a substring of the reason, case-insensitively.
	Reason string
	// From and To bound CapturedAt (From inclusive, To exclusive); an entry with an
	// unknown time is left out when either is set.
	From, To time.Time
}

// Match tells whether e passes f.
func (f Filter) Match(e Entry) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	if !eq(f.Namespace, e.Namespace) || !eq(f.Service, e.Service) || !eq(f.Pod, e.Pod) || !eq(f.Type, e.Type) {
		return false
	}
	if f.Reason != "" && !strings.EqualFold(f.Reason, e.Trigger) &&
		!strings.Contains(strings.ToLower(e.Reason), strings.ToLower(f.Reason)) {
		return false
	}
	if (!f.From.IsZero() || !f.To.IsZero()) && e.CapturedAt.IsZero() {
		return false
	}
	if !f.From.IsZero() && e.CapturedAt.Before(f.From) {
		return false
	}
	if !f.To.IsZero() && !e.CapturedAt.Before(f.To) {
		return false
	}
	return true
}

// Index lists and opens the profiles of one store.
type Index interface {
	// List returns the entries that match f, sorted by CapturedAt, then ID.
	List(ctx context.Context, f Filter) ([]Entry, error)
	// Open returns the profile under id, checked to be a pprof profile of at most
	// limit bytes (DefaultMaxProfileBytes when limit <= 0). Errors wrap ErrBadID,
	// ErrNotFound, ErrTooLarge, ErrEmpty or ErrCorrupt.
	Open(ctx context.Context, id string, limit int64) ([]byte, error)
	// Stat returns the entry of the profile id, as List would list it, without
	// listing the store. Errors wrap ErrBadID or ErrNotFound.
	Stat(ctx context.Context, id string) (Entry, error)
	// String names the store.
	String() string
}

// Config configures New.
type Config struct {
	// Store is a directory or s3://BUCKET[/PREFIX]. Default ./profiles.
	Store string
	// S3Endpoint is an S3-compatible endpoint (MinIO); empty means AWS.
	S3Endpoint string
	// S3Region is the bucket's region; default from the AWS configuration chain.
	S3Region string
	// Timeout bounds each S3 request. Default 30s.
	Timeout time.Duration
	// MaxHeads bounds the HEAD requests of one listing, made for objects without an
	// index marker. Default 1000; those past it are listed with what their key says.
	MaxHeads int
	// HTTPClient sends S3 requests (default: the S3 store's client with timeouts).
	HTTPClient *http.Client
}

// SetDefaults fills in the zero fields.
func (c *Config) SetDefaults() {
	if c.Store == "" {
		c.Store = DefaultStore
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxHeads == 0 {
		c.MaxHeads = DefaultMaxHeads
	}
}

// Validate reports every bad field by name.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Store) == "" {
		errs = append(errs, errors.New("Store: required"))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("Timeout: must not be negative, got %s", c.Timeout))
	}
	if c.MaxHeads < 0 {
		errs = append(errs, fmt.Errorf("MaxHeads: must not be negative, got %d", c.MaxHeads))
	}
	if strings.HasPrefix(c.Store, "s3://") {
		if b, _ := splitS3URL(c.Store); b == "" {
			errs = append(errs, fmt.Errorf("Store %q: no bucket (want s3://BUCKET/PREFIX)", c.Store))
		}
	} else if c.S3Endpoint != "" || c.S3Region != "" {
		errs = append(errs, fmt.Errorf("S3Endpoint, S3Region: set for store %q, which is not s3://", c.Store))
	}
	return errors.Join(errs...)
}

// New returns the index of cfg.Store. It does not contact S3.
func New(ctx context.Context, cfg Config) (Index, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("profile index: %w", err)
	}
	if strings.HasPrefix(cfg.Store, "s3://") {
		return newS3(ctx, cfg)
	}
	return newFS(cfg.Store)
}

// splitS3URL splits s3://bucket/prefix.
func splitS3URL(u string) (bucket, prefix string) {
	rest := strings.TrimPrefix(u, "s3://")
	bucket, prefix, _ = strings.Cut(rest, "/")
	return bucket, strings.Trim(prefix, "/")
}

// CheckID reports why id cannot name a profile in a store: it must be a relative,
// clean, slash-separated path without ".." or "." segments, backslashes, NUL or
// control bytes and percent signs (so no URL-encoded variant of those can be
// decoded into one later), and not name a sidecar, index marker or temporary file.
func CheckID(id string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrBadID, id, why) }
	switch {
	case id == "":
		return bad("empty")
	case len(id) > storage.MaxMarkerKeyLen:
		return bad("longer than 1024 bytes")
	case strings.HasPrefix(id, "/") || path.IsAbs(id) || (len(id) > 1 && id[1] == ':'):
		return bad("absolute path")
	case strings.ContainsAny(id, `\%`):
		return bad(`contains \ or %`)
	case strings.HasSuffix(id, ".json"):
		return bad("names a metadata sidecar")
	case storage.IsMarkerKey(id):
		return bad("names an index marker")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return bad("contains a control character")
		}
	}
	if u, err := url.PathUnescape(id); err != nil || u != id {
		return bad("URL-encoded")
	}
	for _, seg := range strings.Split(id, "/") {
		switch {
		case seg == "" || seg == "." || seg == "..":
			return bad(fmt.Sprintf("has an empty, %q or %q segment", ".", ".."))
		case strings.HasPrefix(seg, ".tmp-"):
			return bad("names a temporary file")
		}
	}
	return nil
}

// withIDCheck notes in e.Error when Open will refuse e.ID (a key with "%" or "\\"
// that kprof never writes), so the entry is listed rather than silently left out.
func withIDCheck(e Entry) Entry {
	if err := CheckID(e.ID); err != nil {
		e.Error = strings.TrimPrefix(strings.Join([]string{e.Error, err.Error()}, "; "), "; ")
	}
	return e
}

// DecompressFactor bounds the decompressed size of a gzipped profile relative to the
// limit on its stored size: pprof protobufs compress about 5-10×, so a profile that
// inflates further is refused as too large before it is inflated whole.
const DecompressFactor = 16

// checkProfile tells whether data, read from what under limit, is a pprof profile.
func checkProfile(what string, data []byte, limit int64) error {
	if len(data) == 0 {
		return fmt.Errorf("%s: %w", what, ErrEmpty)
	}
	raw := data
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%s: %w: gzip: %v", what, ErrCorrupt, err)
		}
		max := limit * DecompressFactor
		if raw, err = io.ReadAll(io.LimitReader(zr, max+1)); err != nil {
			return fmt.Errorf("%s: %w: gzip: %v", what, ErrCorrupt, err)
		}
		if int64(len(raw)) > max {
			return fmt.Errorf("%s: decompressed to more than %d bytes (%d× the limit): %w", what, max, DecompressFactor, ErrTooLarge)
		}
	}
	if _, err := profile.ParseData(raw); err != nil {
		return fmt.Errorf("%s: %w: %v", what, ErrCorrupt, err)
	}
	return nil
}

// limitOrDefault returns limit, or DefaultMaxProfileBytes when it is not positive.
func limitOrDefault(limit int64) int64 {
	if limit <= 0 {
		return DefaultMaxProfileBytes
	}
	return limit
}

// fromMeta fills e's metadata fields from m.
func fromMeta(e *Entry, m storage.Meta) {
	e.Namespace, e.Service, e.Pod, e.Container, e.Node, e.Config = m.Namespace, m.Service, m.Pod, m.Container, m.Node, m.Config
	e.Type, e.CapturedAt, e.Duration, e.Reason = m.Type, m.CapturedAt, m.Duration, m.Reason
	e.Trigger = TriggerOf(m.Reason)
	if c := m.Labels["cluster"]; c != "" {
		e.Cluster = c
	}
}

// TriggerOf maps a stored reason to its trigger: "schedule", "threshold" (a reason
// starting "threshold"), "manual"; "" for anything else.
func TriggerOf(reason string) string {
	r := strings.ToLower(strings.TrimSpace(reason))
	for _, t := range []string{TriggerSchedule, TriggerThreshold, TriggerManual} {
		if r == t || strings.HasPrefix(r, t+":") || strings.HasPrefix(r, t+" ") {
			return t
		}
	}
	return ""
}

// parseDefaultKey reads the metadata that the default key template
// ({prefix}/{namespace}/{service}/{date}/{timestamp}_{pod}_{type}.pb.gz) puts in rel.
func parseDefaultKey(rel string) (storage.Meta, bool) {
	segs := strings.Split(rel, "/")
	if len(segs) < 4 {
		return storage.Meta{}, false
	}
	n := len(segs)
	base, ok := strings.CutSuffix(segs[n-1], ".pb.gz")
	if !ok {
		return storage.Meta{}, false
	}
	first, last := strings.Index(base, "_"), strings.LastIndex(base, "_")
	if first < 0 || last <= first {
		return storage.Meta{}, false
	}
	at, err := time.Parse(storage.TimestampLayout, base[:first])
	if err != nil || at.UTC().Format("2006-01-02") != segs[n-2] {
		return storage.Meta{}, false
	}
	return storage.Meta{Namespace: segs[n-4], Service: segs[n-3], Pod: base[first+1 : last], Type: base[last+1:], CapturedAt: at}, true
}

// sortEntries orders entries by CapturedAt, then ID.
func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int {
		if c := a.CapturedAt.Compare(b.CapturedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
