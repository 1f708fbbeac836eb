package s3

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
)

func TestUserMetadata(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(*storage.Meta)
		maxLabels int
		want      map[string]string // entries that must be present
		absent    []string          // keys that must not be present
	}{
		{
			name:      "every field of the profile is stored",
			maxLabels: 8,
			want: map[string]string{
				"namespace": "shop", "pod": "cart-7d9f", "node": "node-1", "service": "cart", "container": "app",
				"target": "shop/cart-7d9f", "config": "shop/checkout", "type": "heap",
				"captured-at": "2025-03-04T05:06:07.890123456Z", "sha256": "abc",
				"label-app": "cart", "label-app-kubernetes-io-version": "1.2.3",
			},
			absent: []string{"labels-omitted", "duration"},
		},
		{
			name:      "the capture time is stored in UTC",
			edit:      func(m *storage.Meta) { m.CapturedAt = time.Date(2025, 3, 4, 6, 6, 7, 0, time.FixedZone("CET", 3600)) },
			maxLabels: 8,
			want:      map[string]string{"captured-at": "2025-03-04T05:06:07Z"},
		},
		{
			name:      "a CPU profile's duration is stored",
			edit:      func(m *storage.Meta) { m.Duration = 30 * time.Second },
			maxLabels: 8,
			want:      map[string]string{"duration": "30s"},
		},
		{
			name:      "empty fields are left out",
			edit:      func(m *storage.Meta) { m.Node, m.Container = "", "" },
			maxLabels: 8,
			absent:    []string{"node", "container"},
		},
		{
			name:      "non-ASCII, percent signs and control characters are percent-encoded",
			edit:      func(m *storage.Meta) { m.Reason = "cpu 93% ≥ 80%\r\nX-Injected: 1" },
			maxLabels: 8,
			want:      map[string]string{"reason": "cpu 93%25 %E2%89%A5 80%25%0D%0AX-Injected: 1"},
		},
		{
			name:      "spaces at either end are encoded so HTTP does not trim them",
			edit:      func(m *storage.Meta) { m.Labels = map[string]string{"team": " core "} },
			maxLabels: 8,
			want:      map[string]string{"label-team": "%20core%20"},
		},
		{
			name: "label keys are mapped to lower-case S3-safe characters",
			edit: func(m *storage.Meta) {
				m.Labels = map[string]string{"Example.COM/Team_Name": "core"}
			},
			maxLabels: 8,
			want:      map[string]string{"label-example-com-team-name": "core"},
		},
		{
			name: "labels that map to the same key keep the first in key order",
			edit: func(m *storage.Meta) {
				m.Labels = map[string]string{"a.b": "first", "a_b": "second"}
			},
			maxLabels: 8,
			want:      map[string]string{"label-a-b": "first", "labels-omitted": "1"},
		},
		{
			name: "labels beyond MaxMetadataLabels are counted as omitted",
			edit: func(m *storage.Meta) {
				m.Labels = map[string]string{"a": "1", "b": "2", "c": "3"}
			},
			maxLabels: 2,
			want:      map[string]string{"label-a": "1", "label-b": "2", "labels-omitted": "1"},
			absent:    []string{"label-c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta := sampleMeta()
			if tt.edit != nil {
				tt.edit(&meta)
			}
			got := userMetadata(meta, "abc", tt.maxLabels)
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("metadata %s = %q, want %q", k, got[k], v)
				}
			}
			for _, k := range tt.absent {
				if v, ok := got[k]; ok {
					t.Errorf("metadata %s = %q, want it absent", k, v)
				}
			}
			for k, v := range got {
				if !printableASCII(k) || !printableASCII(v) {
					t.Errorf("metadata %q: %q is not printable ASCII", k, v)
				}
			}
		})
	}
}

func TestUserMetadataStaysBelowTwoKiB(t *testing.T) {
	long := strings.Repeat("x", 5000)
	meta := storage.Meta{
		Namespace: long, Pod: long, Node: long, Service: long, Container: long, Target: long,
		Config: long, Reason: strings.Repeat("é", 3000), Type: "cpu", CapturedAt: time.Now(), Duration: time.Second,
		Labels: map[string]string{},
	}
	for i := range 100 {
		meta.Labels[fmt.Sprintf("example.com/%s-%03d", strings.Repeat("k", 80), i)] = long
	}
	got := userMetadata(meta, strings.Repeat("f", 64), 100)
	if size := metadataSize(got); size >= 2048 {
		t.Fatalf("metadata is %d bytes, want < 2048", size)
	}
	for _, k := range []string{"sha256", "type", "captured-at", "namespace"} {
		if got[k] == "" {
			t.Errorf("the most important field %q was dropped: %v", k, got)
		}
	}
	if got["labels-omitted"] != "100" {
		t.Errorf("labels-omitted = %q, want 100 (no label fits)", got["labels-omitted"])
	}
}

func TestEscapeValueNeverSplitsAnEscape(t *testing.T) {
	for limit := 0; limit <= 12; limit++ {
		t.Run(fmt.Sprintf("a limit of %d bytes yields a decodable prefix", limit), func(t *testing.T) {
			got := escapeValue("aé%bc ≥ d", limit)
			if len(got) > limit {
				t.Fatalf("escapeValue = %q, longer than %d", got, limit)
			}
			if _, err := url.PathUnescape(got); err != nil {
				t.Fatalf("escapeValue = %q does not decode: %v", got, err)
			}
		})
	}
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
