package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/index"
)

func TestConfigValidateNamesEachBadField(t *testing.T) {
	err := Config{MaxProfileBytes: -1, CachedProfiles: -2, MaxMergeProfiles: -3}.Validate()
	for _, want := range []string{"Index: required", "MaxProfileBytes: must not be negative, got -1", "CachedProfiles: must not be negative, got -2",
		"MaxMergeProfiles: must not be negative, got -3"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "ui: Index: required") {
		t.Errorf("New(Config{}) = %v, want the missing Index named", err)
	}
}

func TestTimelinesPlaceCapturesOnOneAxisPerService(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	es := []index.Entry{
		{ID: "a", Namespace: "shop", Service: "checkout", CapturedAt: t0, Trigger: index.TriggerSchedule},
		{ID: "b", Namespace: "shop", Service: "payments", CapturedAt: t0.Add(30 * time.Minute), Trigger: index.TriggerSchedule},
		{ID: "c", Namespace: "shop", Service: "checkout", CapturedAt: t0.Add(time.Hour), Trigger: index.TriggerThreshold, Reason: "threshold: cpu 93%"},
		{ID: "d", Namespace: "shop", Service: "checkout"}, // no time: not on the axis
	}
	tls := timelines(es)
	if len(tls) != 2 || tls[0].Service != "checkout" || tls[1].Service != "payments" {
		t.Fatalf("timelines = %+v, want checkout's and payments'", tls)
	}
	got := []mark{}
	got = append(got, tls[0].Marks...)
	got = append(got, tls[1].Marks...)
	want := []struct {
		id, x     string
		threshold bool
	}{{"a", "10.0", false}, {"c", "790.0", true}, {"b", "400.0", false}}
	if len(got) != len(want) {
		t.Fatalf("marks = %+v, want %d", got, len(want))
	}
	for i, w := range want {
		if got[i].ID != w.id || got[i].X != w.x || got[i].Threshold != w.threshold {
			t.Errorf("mark %d = %+v, want id %s at x=%s threshold=%v", i, got[i], w.id, w.x, w.threshold)
		}
	}
	if !strings.Contains(got[1].Title, "threshold: cpu 93%") {
		t.Errorf("the threshold mark's title %q does not give the reason", got[1].Title)
	}
	if timelines([]index.Entry{{ID: "x"}}) != nil {
		t.Error("entries without a capture time make a timeline, want none")
	}
}

func TestQueryFilterMirrorsTheCLI(t *testing.T) {
	now := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	f, err := query{Service: "checkout", Type: "cpu", Reason: "threshold", Since: "1h"}.filter(now)
	if err != nil || f.Service != "checkout" || f.Type != "cpu" || f.Reason != "threshold" || !f.From.Equal(now.Add(-time.Hour)) || !f.To.IsZero() {
		t.Errorf("filter = %+v, %v", f, err)
	}
	f, err = query{From: "2026-12-07T14:00", To: "2026-12-07"}.filter(now)
	if err == nil || !strings.Contains(err.Error(), `to "2026-12-07": must be after the start`) {
		t.Errorf("from after to: %+v, %v; want an error naming to", f, err)
	}
	for _, q := range []query{{Since: "soon"}, {Since: "-1h"}, {Since: "1h", From: "2026-12-07"}, {From: "yesterday"}} {
		if _, err := q.filter(now); err == nil {
			t.Errorf("%+v: no error", q)
		}
	}
}

func TestMergeQueryIsPinnedToATimeRange(t *testing.T) {
	now := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	f, err := query{Service: "checkout", Type: "cpu", Since: "1h"}.filter(now)
	if err != nil {
		t.Fatal(err)
	}
	if got := pinned(f, now).Encode(); got != "from=2026-12-07T14%3A00%3A00Z&service=checkout&to=2026-12-07T15%3A00%3A00Z&type=cpu" {
		t.Errorf("pinned since=1h = %s, want from and to fixed at now", got)
	}
	f = index.Filter{Type: "heap", To: now.Add(-time.Hour)}
	if got := pinned(f, now).Encode(); got != "to=2026-12-07T14%3A00%3A00Z&type=heap" {
		t.Errorf("pinned to = %s, want the given end kept", got)
	}
}

func TestMergeLinksCarryTheFiltersAndOneTypeEach(t *testing.T) {
	es := []index.Entry{{Type: "cpu"}, {Type: "heap"}, {Type: "cpu"}, {}}
	got := mergeLinks(query{Service: "checkout", Since: "1h"}, es)
	if len(got) != 2 || got[0].Type != "cpu" || got[0].Count != 2 || got[1].Type != "heap" || got[1].Count != 1 {
		t.Fatalf("merge links %+v, want cpu (2) and heap (1)", got)
	}
	if got[0].URL != "/merge/?service=checkout&since=1h&type=cpu" {
		t.Errorf("cpu's merge link %q does not carry the filters and the type", got[0].URL)
	}
}
