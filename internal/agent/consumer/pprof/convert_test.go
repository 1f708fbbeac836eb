package pprof

import (
	"slices"
	"testing"
	"time"

	googlepprof "github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/agent/profile"
)

var testStart = time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)

// testEvent has one sample with two kernel frames, an inline group of two Go
// functions at one address, a plain user frame and an unknown user frame, and
// a second sample that reuses the inline location.
func testEvent() *profile.Event {
	app := &profile.Mapping{Start: 0x400000, Limit: 0x800000, File: "/app/server", BuildID: "abc123"}
	libc := &profile.Mapping{Start: 0x7f0000, Limit: 0x7f8000, Offset: 0x1000, File: "/lib/libc.so.6", BuildID: "def456"}
	inline := []profile.Frame{
		{Address: 0x401000, Function: "main.inner", File: "/src/main.go", Line: 10, Mapping: app},
		{Address: 0x401000, Function: "main.outer", File: "/src/main.go", Line: 20, Mapping: app},
	}
	return &profile.Event{
		Config: "cfg", EventName: "cpu-clock", Period: 10_000_000,
		Start: testStart, End: testStart.Add(10 * time.Second),
		Labels: map[string]string{"node": "n1"},
		Samples: []profile.Sample{
			{
				PID: 42, TID: 43, Count: 3, CPUTime: 30 * time.Millisecond,
				Labels: map[string]string{"pod": "web-0", "namespace": "prod", "pid": "42"},
				Frames: append(append([]profile.Frame{
					{Address: 0xffffffff81000010, Kernel: true, Function: "do_syscall_64"},
					{Address: 0xffffffff81000020, Kernel: true, Function: "entry_SYSCALL_64"},
				}, inline...),
					profile.Frame{Address: 0x402000, Function: "main.main", File: "/src/main.go", Line: 30, Mapping: app},
					profile.Frame{Address: 0x7f1234, Mapping: libc}, // unknown function
				),
			},
			{PID: 42, TID: 44, Count: 1, CPUTime: 10 * time.Millisecond, Frames: inline},
		},
	}
}

func roundTrip(t *testing.T, ev *profile.Event) *googlepprof.Profile {
	t.Helper()
	data, err := Encode(ev)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	p, err := googlepprof.ParseData(data)
	if err != nil {
		t.Fatalf("ParseData: %v", err)
	}
	if err := p.CheckValid(); err != nil {
		t.Fatalf("parsed profile invalid: %v", err)
	}
	return p
}

func lineNames(loc *googlepprof.Location) []string {
	var out []string
	for _, l := range loc.Line {
		out = append(out, l.Function.Name)
	}
	return out
}

func TestConvertRoundTripsKernelUserAndInlinedFrames(t *testing.T) {
	p := roundTrip(t, testEvent())

	if got := []string{p.SampleType[0].Type + "/" + p.SampleType[0].Unit, p.SampleType[1].Type + "/" + p.SampleType[1].Unit}; !slices.Equal(got, []string{"samples/count", "cpu/nanoseconds"}) {
		t.Errorf("sample types = %v", got)
	}
	if p.PeriodType.Type != "cpu" || p.PeriodType.Unit != "nanoseconds" || p.Period != 10_000_000 {
		t.Errorf("period = %v %d", p.PeriodType, p.Period)
	}
	if p.TimeNanos != testStart.UnixNano() || p.DurationNanos != int64(10*time.Second) {
		t.Errorf("time = %d duration = %d", p.TimeNanos, p.DurationNanos)
	}
	if len(p.Sample) != 2 {
		t.Fatalf("got %d samples, want 2", len(p.Sample))
	}
	s := p.Sample[0]
	if !slices.Equal(s.Value, []int64{3, int64(30 * time.Millisecond)}) {
		t.Errorf("values = %v", s.Value)
	}
	if got := s.Label["pod"]; !slices.Equal(got, []string{"web-0"}) {
		t.Errorf("pod label = %v", got)
	}
	if got := s.Label["node"]; !slices.Equal(got, []string{"n1"}) {
		t.Errorf("node label = %v", got)
	}
	if _, ok := s.Label["pid"]; ok {
		t.Errorf("pid must be numeric only, got string label %v", s.Label["pid"])
	}
	if !slices.Equal(s.NumLabel["pid"], []int64{42}) || !slices.Equal(s.NumLabel["tid"], []int64{43}) {
		t.Errorf("num labels = %v", s.NumLabel)
	}

	// 2 kernel + 1 inline group + main.main + unknown = 5 locations.
	if len(s.Location) != 5 {
		t.Fatalf("got %d locations, want 5", len(s.Location))
	}
	for i, want := range [][]string{{"do_syscall_64"}, {"entry_SYSCALL_64"}, {"main.inner", "main.outer"}, {"main.main"}, nil} {
		if got := lineNames(s.Location[i]); !slices.Equal(got, want) {
			t.Errorf("location %d lines = %v, want %v", i, got, want)
		}
	}
	for i := range 2 {
		if m := s.Location[i].Mapping; m == nil || m.File != profile.KernelMappingFile {
			t.Errorf("kernel location %d mapping = %+v", i, m)
		}
	}
	if got := s.Location[2].Line; got[0].Line != 10 || got[1].Line != 20 || got[0].Function.Filename != "/src/main.go" {
		t.Errorf("inline lines = %+v", got)
	}
	if m := s.Location[2].Mapping; m.File != "/app/server" || m.BuildID != "abc123" {
		t.Errorf("app mapping = %+v", m)
	}
	unknown := s.Location[4]
	if unknown.Address != 0x7f1234 || unknown.Mapping.File != "/lib/libc.so.6" || unknown.Mapping.BuildID != "def456" {
		t.Errorf("unknown location = %+v mapping %+v", unknown, unknown.Mapping)
	}
	if p.Sample[1].Location[0].ID != s.Location[2].ID {
		t.Errorf("the inline location is not shared between samples")
	}
}

func TestConvertEmptyEventIsValid(t *testing.T) {
	p := roundTrip(t, &profile.Event{})
	if len(p.Sample) != 0 || len(p.SampleType) != 2 {
		t.Errorf("got %d samples, %d sample types", len(p.Sample), len(p.SampleType))
	}
}

func TestConvertNilEventIsAnError(t *testing.T) {
	if _, err := Convert(nil); err == nil {
		t.Fatal("Convert(nil) returned no error")
	}
}

func TestConvertDerivesPeriodFromFrequency(t *testing.T) {
	p, err := Convert(&profile.Event{Frequency: 100})
	if err != nil {
		t.Fatal(err)
	}
	if p.Period != 10_000_000 {
		t.Errorf("period = %d, want 10ms", p.Period)
	}
}
