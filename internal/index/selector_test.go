package index

import (
	"strings"
	"testing"
	"time"
)

func TestParseSelector(t *testing.T) {
	now := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, sel string
		want      Filter
	}{
		{"a service and a type", "service=checkout,type=cpu", Filter{Service: "checkout", Type: "cpu"}},
		{"since counts back from now", "service=checkout,reason=schedule,since=1h",
			Filter{Service: "checkout", Reason: "schedule", From: now.Add(-time.Hour)}},
		{"from and to take times and dates", "ns=shop,from=2026-12-07T13:00,to=2026-12-08",
			Filter{Namespace: "shop", From: time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)}},
		{"a reason keeps its spaces and colons", "reason=threshold: cpu 93%,pod=checkout-7d9",
			Filter{Reason: "threshold: cpu 93%", Pod: "checkout-7d9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSelector(tc.sel, now)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("ParseSelector(%q) = %+v, want %+v", tc.sel, got, tc.want)
			}
		})
	}
	for _, tc := range []struct{ sel, want string }{
		{"", "empty selector"},
		{"service=checkout,cpu", `"cpu" is not KEY=VALUE`},
		{"color=red", `unknown key "color"`},
		{"service=a,service=b", "service given twice"},
		{"service=", "service has no value"},
		{"since=soon", `since "soon"`},
		{"since=-1h", `since "-1h"`},
		{"since=1h,from=2026-12-07", "since and from"},
		{"from=yesterday", "from: time \"yesterday\""},
		{"from=2026-12-08,to=2026-12-07", `to "2026-12-07": must be after the start`},
	} {
		t.Run("selector "+tc.sel+" is refused naming the problem", func(t *testing.T) {
			_, err := ParseSelector(tc.sel, now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseSelector(%q) = %v, want an error saying %q", tc.sel, err, tc.want)
			}
		})
	}
}

func TestLooksLikeSelectorTellsSelectorsFromIDsAndPaths(t *testing.T) {
	for s, want := range map[string]bool{
		"service=checkout":  true,
		"since=1h,type=cpu": true,
		"ns=shop":           true,
		"=x":                false,
		"shop/checkout/2026-12-07/20261207T140203.000Z_checkout-7d9_cpu.pb.gz": false,
		"./profiles/x=1.pb.gz": false,
		"dir/service=1":        false,
		"Service=checkout":     false,
		"profiles":             false,
	} {
		if got := LooksLikeSelector(s); got != want {
			t.Errorf("LooksLikeSelector(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestFilterOrFillsWhatTheSelectorLeavesOpen(t *testing.T) {
	at := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	flags := Filter{Service: "checkout", Type: "cpu", From: at.Add(-24 * time.Hour)}
	got := Filter{Type: "heap", From: at.Add(-time.Hour), To: at}.Or(flags)
	want := Filter{Service: "checkout", Type: "heap", From: at.Add(-time.Hour), To: at}
	if got != want {
		t.Errorf("Or = %+v, want %+v (the selector's type and time range win)", got, want)
	}
	if got := (Filter{Pod: "p"}).Or(flags); got.From != flags.From || got.Service != "checkout" || got.Pod != "p" {
		t.Errorf("Or = %+v, want the flags' time range and service with the selector's pod", got)
	}
	if s := want.String(); s != "service=checkout,type=heap,from=2026-12-07T13:00:00Z,to=2026-12-07T14:00:00Z" {
		t.Errorf("String = %q", s)
	}
}

// TestTimeRangeNamesTheFieldsAsTheUserWroteThem: the flags, a selector and the UI's
// query share one TimeRange, and each error names the field in the caller's terms.
func TestTimeRangeNamesTheFieldsAsTheUserWroteThem(t *testing.T) {
	now := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	flag := func(f string) string { return "--" + f }
	var f Filter
	if err := (TimeRange{Since: "90m", To: "2026-12-07T14:00"}).Apply(&f, now, flag); err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-90 * time.Minute); !f.From.Equal(want) || !f.To.Equal(now) {
		t.Errorf("since 90m to 14:00: From %s To %s, want %s and %s", f.From, f.To, want, now)
	}
	for _, tc := range []struct {
		r    TimeRange
		want string
	}{
		{TimeRange{Since: "0s"}, `--since "0s": want a positive duration`},
		{TimeRange{Since: "1h", From: "2026-12-07"}, "--since and --from: give one of them, not both"},
		{TimeRange{From: "yesterday"}, "--from: "},
		{TimeRange{To: "noon"}, "--to: "},
		{TimeRange{From: "2026-12-08", To: "2026-12-07"}, `--to "2026-12-07": must be after the start 2026-12-08T00:00:00Z`},
	} {
		var f Filter
		if err := tc.r.Apply(&f, now, flag); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error containing %q", tc.r, err, tc.want)
		}
	}
}
