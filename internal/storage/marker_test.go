package storage

import (
	"strings"
	"testing"
	"time"
)

func TestMarkerKeyRoundTripsTheMetadata(t *testing.T) {
	meta := Meta{Namespace: "shop", Service: "checkout", Pod: "checkout-7d9", Container: "app", Node: "n1",
		Type: "cpu", Reason: "threshold: cpu 93% of request >= 80%", Duration: 30 * time.Second,
		CapturedAt: time.Date(2026, 12, 7, 14, 2, 3, 456000000, time.UTC), Labels: map[string]string{"app": "checkout"}}
	key := RenderKey(DefaultKeyTemplate, "prod", meta)
	mk, ok := MarkerKey(key, meta)
	if !ok {
		t.Fatalf("no marker for %q", key)
	}
	if !IsMarkerKey(mk) || IsMarkerKey(key) {
		t.Errorf("IsMarkerKey(%q) or IsMarkerKey(%q) is wrong", mk, key)
	}
	gotKey, got, err := ParseMarkerKey(mk)
	if err != nil {
		t.Fatal(err)
	}
	if gotKey != key {
		t.Errorf("profile key %q, want %q", gotKey, key)
	}
	want := meta
	want.Labels = nil
	if got.Namespace != want.Namespace || got.Service != want.Service || got.Pod != want.Pod || got.Container != want.Container ||
		got.Node != want.Node || got.Type != want.Type || got.Reason != want.Reason || got.Duration != want.Duration ||
		!got.CapturedAt.Equal(want.CapturedAt) || got.Labels != nil {
		t.Errorf("parsed %+v, want %+v", got, want)
	}
}

func TestMarkerKeyStaysBelowTheS3KeyLimit(t *testing.T) {
	meta := Meta{Namespace: "ns", Type: "cpu", Reason: strings.Repeat("é", 400), Target: strings.Repeat("t", 300)}
	key := strings.Repeat("k/", 150) + "p.pb.gz"
	mk, ok := MarkerKey(key, meta)
	if !ok {
		t.Fatal("no marker although the cut reason fits")
	}
	if len(mk) > MaxMarkerKeyLen {
		t.Errorf("marker key is %d bytes", len(mk))
	}
	for _, seg := range strings.Split(mk, "/") {
		if len(seg) > 255 {
			t.Errorf("marker key segment of %d bytes, more than MinIO's 255: %q", len(seg), seg)
		}
	}
	_, got, err := ParseMarkerKey(mk)
	if err != nil {
		t.Fatal(err)
	}
	if got.Target != "" || !strings.HasPrefix(meta.Reason, got.Reason) || len(got.Reason) > minReasonLen {
		t.Errorf("cut metadata: target %q, reason %q", got.Target, got.Reason)
	}
	if _, ok := MarkerKey(strings.Repeat("k/", 500), meta); ok {
		t.Error("a marker for a 1000-byte key fits, want none")
	}
	if _, ok := MarkerKey("a/"+strings.Repeat("k", 250), meta); ok {
		t.Error("a marker whose first segment is longer than 255 bytes was made, want none")
	}
}

func TestParseMarkerKeyNamesWhatIsWrong(t *testing.T) {
	for _, tc := range []struct{ name, key, want string }{
		{"a key without the infix", "a/b.pb.gz", "no \".kprof-meta/\""},
		{"an unknown version", "a/b.pb.gz.kprof-meta/v9/xx", "unknown version"},
		{"a payload that is not base64", "a/b.pb.gz.kprof-meta/v1/!!", "payload"},
		{"a payload that is not JSON", "a/b.pb.gz.kprof-meta/v1/bm90IGpzb24", "payload"},
		{"a payload without a type", "a/b.pb.gz.kprof-meta/v1/e30", "no type"},
		{"a marker of nothing", ".kprof-meta/v1/e30", "no \".kprof-meta/\""},
		{"an overlong key", strings.Repeat("a", 1100) + ".kprof-meta/v1/e30", "more than 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseMarkerKey(tc.key)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
