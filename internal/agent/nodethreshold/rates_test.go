package nodethreshold

import (
	"testing"

	"github.com/kprof/kprof/internal/agent/profile"
)

// CPU usage is the counter's growth over the last reading interval; a new, restarted or
// returning counter has none in its first reading; memory is the gauge as read.
func TestCPUUsageIsTheCounterGrowthOverTheLastInterval(t *testing.T) {
	type want struct {
		cpu    string // "" = the container has no CPU usage (zero quantity)
		mem    string
		absent bool // no usage at all for the pod
	}
	steps := []struct {
		name string
		m    *profile.Metrics
		want want
	}{
		{"a first reading has no CPU usage, only memory",
			reading(0, cpu(uidA, cidA, "main", 10), mem(uidA, cidA, "main", 1<<20)), want{mem: "1Mi"}},
		{"0.5 s used in 1 s is 500m",
			reading(1, cpu(uidA, cidA, "main", 10.5), mem(uidA, cidA, "main", 2<<20)), want{cpu: "500m", mem: "2Mi"}},
		{"1.2 s used in 0.5 s is 2.4 cores",
			reading(1.5, cpu(uidA, cidA, "main", 11.7)), want{cpu: "2400m"}},
		{"a counter gone backwards (cgroup recreated) has no usage",
			reading(2.5, cpu(uidA, cidA, "main", 0.1)), want{absent: true}},
		{"the next reading after the reset has one again",
			reading(3.5, cpu(uidA, cidA, "main", 0.35)), want{cpu: "250m"}},
		{"a counter with a new start has no usage",
			reading(4.5, cpuFrom(uidA, cidA, "main", t0.Add(4e9), 5)), want{absent: true}},
		{"usage again from the new start",
			reading(5.5, cpuFrom(uidA, cidA, "main", t0.Add(4e9), 5.1)), want{cpu: "100m"}},
		{"a reading without the counter forgets it",
			reading(6.5), want{absent: true}},
		{"a returning counter starts afresh",
			reading(7.5, cpuFrom(uidA, cidA, "main", t0.Add(4e9), 9)), want{absent: true}},
		{"a reading at the same time gives no usage (no division by zero)",
			reading(7.5, cpuFrom(uidA, cidA, "main", t0.Add(4e9), 9.5)), want{absent: true}},
		{"a container not yet named (no container ID in the pod's status) has no usage",
			reading(8.5, cpuFrom(uidA, cidA, "", t0.Add(4e9), 10)), want{absent: true}},
	}
	r := newRates()
	for _, s := range steps {
		got := r.usage(s.m)
		pu, ok := got[uidA]
		if s.want.absent {
			if ok {
				t.Errorf("%s: usage %+v, want none", s.name, pu)
			}
			continue
		}
		if !ok || len(pu.Containers) != 1 || pu.Containers[0].Name != "main" {
			t.Errorf("%s: usage %+v, want one container main", s.name, pu)
			continue
		}
		c := pu.Containers[0]
		if wantCPU := s.want.cpu; (wantCPU == "" && !c.CPU.IsZero()) || (wantCPU != "" && c.CPU.String() != qty(wantCPU)) {
			t.Errorf("%s: CPU %s, want %q", s.name, c.CPU.String(), wantCPU)
		}
		if wantMem := s.want.mem; (wantMem == "" && !c.Memory.IsZero()) || (wantMem != "" && c.Memory.Cmp(mustQ(wantMem)) != 0) {
			t.Errorf("%s: memory %s, want %q", s.name, c.Memory.String(), wantMem)
		}
		if !pu.Timestamp.Equal(s.m.Time) {
			t.Errorf("%s: timestamp %s, want the reading's %s", s.name, pu.Timestamp, s.m.Time)
		}
	}
}

// Two pods and the containers of one pod are kept apart; pod-level points are ignored.
func TestUsageIsPerPodAndContainer(t *testing.T) {
	r := newRates()
	podPoint := profile.Point{Name: profile.PodCPUTime, Kind: profile.Counter, Value: 100, Start: t0, Labels: map[string]string{"pod_uid": uidA}}
	r.usage(reading(0, podPoint, cpu(uidA, cidA, "main", 1), cpu(uidA, cidS, "sidecar", 1), cpu(uidB, cidB, "main", 1)))
	podPoint.Value = 200
	got := r.usage(reading(2, podPoint, cpu(uidA, cidA, "main", 2), cpu(uidA, cidS, "sidecar", 1.5), cpu(uidB, cidB, "main", 1.2)))
	if len(got) != 2 {
		t.Fatalf("usage of %d pods, want 2: %+v", len(got), got)
	}
	a := got[uidA].Containers
	if len(a) != 2 || a[0].Name != "main" || a[0].CPU.String() != "500m" || a[1].Name != "sidecar" || a[1].CPU.String() != "250m" {
		t.Errorf("pod A containers %+v, want main 500m and sidecar 250m", a)
	}
	if b := got[uidB].Containers; len(b) != 1 || b[0].CPU.String() != "100m" {
		t.Errorf("pod B containers %+v, want main 100m", b)
	}
}
