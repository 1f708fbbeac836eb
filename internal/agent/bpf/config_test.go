package bpf

import (
	"slices"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Run("the zero config samples cpu-clock at 99 Hz with default map sizes", func(t *testing.T) {
		var c Config
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		want := Config{Event: "cpu-clock", Frequency: 99, MaxStacks: DefaultMaxStacks, MaxEntries: DefaultMaxEntries}
		if c.Event != want.Event || c.Frequency != want.Frequency || c.SamplePeriod != 0 ||
			c.MaxStacks != want.MaxStacks || c.MaxEntries != want.MaxEntries || c.CPUs != nil || c.IncludeIdle {
			t.Errorf("defaults: got %+v, want %+v", c, want)
		}
	})
	t.Run("a sample period is kept and no frequency is added", func(t *testing.T) {
		c := Config{Event: "page-faults", SamplePeriod: 1000}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.Frequency != 0 || c.SamplePeriod != 1000 {
			t.Errorf("got Frequency %d SamplePeriod %d", c.Frequency, c.SamplePeriod)
		}
	})
	t.Run("every listed event is accepted", func(t *testing.T) {
		for _, ev := range Events {
			c := Config{Event: ev}
			if err := c.Validate(); err != nil {
				t.Errorf("%s: %v", ev, err)
			}
		}
	})

	bad := []struct {
		name  string
		cfg   Config
		wants []string // each must appear in the error
	}{
		{"an unknown event is named with the accepted ones", Config{Event: "cycles"}, []string{`Event "cycles"`, "cpu-clock"}},
		{"period and frequency together are refused", Config{SamplePeriod: 10, Frequency: 99}, []string{"SamplePeriod 10", "Frequency 99"}},
		{"a period with the top bit set is refused", Config{SamplePeriod: 1 << 63}, []string{"SamplePeriod"}},
		{"a negative CPU is refused", Config{CPUs: []int{0, -1}}, []string{"CPUs: -1"}},
		{"a duplicate CPU is refused", Config{CPUs: []int{1, 1}}, []string{"CPUs: 1 is listed twice"}},
		{"huge stack maps are refused", Config{MaxStacks: 1 << 30}, []string{"MaxStacks 1073741824"}},
		{"huge count maps are refused", Config{MaxEntries: 1 << 30}, []string{"MaxEntries 1073741824"}},
		{"too many excluded pids are refused", Config{ExcludePIDs: make([]uint32, maxExclude+1)}, []string{"ExcludePIDs"}},
		{"every bad field is reported, not only the first", Config{Event: "x", MaxStacks: 1 << 30, CPUs: []int{-2}}, []string{"Event", "MaxStacks", "CPUs"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil {
				t.Fatalf("Validate(%+v) = nil", tc.cfg)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseCPUList(t *testing.T) {
	good := map[string][]int{
		"0":         {0},
		"0-3\n":     {0, 1, 2, 3},
		"0-1,4,6-7": {0, 1, 4, 6, 7},
		"2,5":       {2, 5},
		" 0-0 ":     {0},
	}
	for in, want := range good {
		got, err := parseCPUList(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a", "3-1", "1-", "-1", "0,,1"} {
		if got, err := parseCPUList(in); err == nil {
			t.Errorf("parseCPUList(%q) = %v, want an error", in, got)
		}
	}
}
