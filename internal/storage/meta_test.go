package storage_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
)

func TestSidecarsUseTheS3MetadataNames(t *testing.T) {
	m := sampleMeta()
	m.Duration = 22 * time.Second
	m.Reason = "schedule"
	m.Labels = map[string]string{"env": "dev"}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		storage.MetaNamespace: "shop", storage.MetaPod: "cart-7d9f", storage.MetaNode: "node-1", storage.MetaService: "cart",
		storage.MetaContainer: "app", storage.MetaTarget: "shop/cart-7d9f", storage.MetaType: "cpu", storage.MetaReason: "schedule",
		"captured-at": "2025-03-04T05:06:07.89Z", "duration": "22s", storage.MetaLabels: map[string]any{"env": "dev"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sidecar JSON = %s\nwant the keys and values %v", b, want)
	}
	var back storage.Meta
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("round trip = %+v, want %+v", back, m)
	}
}

func TestSidecarsOfOlderVersionsAreStillRead(t *testing.T) {
	old := `{"namespace":"shop","pod":"cart-7d9f","type":"cpu","capturedAt":"2025-03-04T05:06:07.89Z","durationNanos":30000000000}`
	var m storage.Meta
	if err := json.Unmarshal([]byte(old), &m); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC); !m.CapturedAt.Equal(want) || m.Duration != 30*time.Second || m.Pod != "cart-7d9f" {
		t.Errorf("old sidecar read as %+v, want captured at %s, duration 30s", m, want)
	}
	for _, bad := range []string{`{"type":"cpu","captured-at":"yesterday"}`, `{"type":"cpu","duration":"long"}`} {
		if err := json.Unmarshal([]byte(bad), &m); err == nil {
			t.Errorf("%s was read without an error", bad)
		}
	}
}
