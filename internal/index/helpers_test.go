package index

import (
	"bytes"
	"context"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
)

// t0 is the time of the first test capture.
var t0 = time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)

// heapProfile returns a real gzipped pprof profile of this process.
func heapProfile(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&b, 0); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// testMetas are three captures: two scheduled of checkout (cpu, heap) and one threshold capture of cart.
func testMetas() []storage.Meta {
	return []storage.Meta{
		{Namespace: "shop", Service: "checkout", Pod: "checkout-7d9", Container: "app", Type: "cpu", Reason: "schedule",
			CapturedAt: t0, Duration: 30 * time.Second, Labels: map[string]string{"cluster": "eu-1"}},
		{Namespace: "shop", Service: "checkout", Pod: "checkout-7d9", Type: "heap", Reason: "schedule", CapturedAt: t0.Add(time.Minute)},
		// Metadata long enough that its marker's payload spans several key segments.
		{Namespace: "shop", Service: "cart", Pod: "cart-0", Node: "ip-10-0-12-34.eu-west-1.compute.internal", Target: "shop/cart-0",
			Config: "shop/cart-thresholds", Type: "cpu", Reason: "threshold: cpu 93% of request >= 80%",
			CapturedAt: t0.Add(2 * time.Minute), Duration: 10 * time.Second},
	}
}

// put stores each meta with the real store under the default key layout, returns the keys.
func put(t *testing.T, s storage.Store, prefix string, data []byte, metas []storage.Meta) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	for _, m := range metas {
		k := storage.RenderKey(storage.DefaultKeyTemplate, prefix, m)
		if err := s.Put(ctx, k, data, m); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

// ids returns the IDs of es.
func ids(es []Entry) []string {
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}
