package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/index"
)

func TestListJSONIsWhatEncodingJSONWritesForTheWholeList(t *testing.T) {
	entry := func(i int) index.Entry {
		return index.Entry{
			ID: fmt.Sprintf("shop/<script>alert(%d)</script>/2026-12-07/20261207T140203.000Z_p\"od_cpu.pb.gz", i), Namespace: "shop",
			Service: "<script>alert(1)</script>", Pod: "p\"od-ü", Type: "cpu", CapturedAt: time.Date(2026, 12, 7, 14, 2, 3, i, time.UTC),
			Duration: 10 * time.Second, Trigger: "threshold", Reason: "threshold: cpu 93% of request ≥ 80% & more", Size: int64(100 + i),
			Location: "s3://bucket/x", Source: "marker", Error: "line\nbreak",
		}
	}
	for _, n := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("a list of %d entries", n), func(t *testing.T) {
			es := make([]index.Entry, n)
			for i := range es {
				es[i] = entry(i)
			}
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetIndent("", "  ")
			if err := enc.Encode(append([]index.Entry{}, es...)); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := writeJSON(&got, es); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("writeJSON wrote\n%s\nencoding/json writes\n%s", got.String(), want.String())
			}
		})
	}
}

func TestListNamesAreTheIDsOneALine(t *testing.T) {
	var got bytes.Buffer
	if err := writeNames(&got, []index.Entry{{ID: "a/b.pb.gz"}, {ID: "c.pb.gz"}}); err != nil {
		t.Fatal(err)
	}
	if got.String() != "a/b.pb.gz\nc.pb.gz\n" {
		t.Errorf("writeNames wrote %q", got.String())
	}
}
