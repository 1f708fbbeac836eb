package nodethreshold

import (
	"math"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/threshold"
)

// containerKey names one container cgroup.
type containerKey struct{ podUID, containerID string }

// cpuSeen is what the previous reading held of one CPU counter.
type cpuSeen struct {
	start time.Time
	value float64 // seconds
	at    time.Time
}

// rates turns successive readings into usage: CPU cores from the growth of each
// container's counter over the last reading interval, memory bytes as read. Not safe for
// concurrent use.
type rates struct {
	last map[containerKey]cpuSeen
}

func newRates() *rates { return &rates{last: map[containerKey]cpuSeen{}} }

// usage returns the usage of every pod with a named container in m, by pod UID, and
// remembers m's counters for the next reading. A counter without a previous value in
// the same run (new, restarted with another Start, gone backwards, or the reading not
// after the previous one) has no CPU usage in this reading; its container still has its
// memory. Counters absent from m are forgotten, so one that comes back starts afresh.
func (r *rates) usage(m *profile.Metrics) map[string]*threshold.PodUsage {
	out := map[string]*threshold.PodUsage{}
	seen := make(map[containerKey]cpuSeen, len(r.last))
	for i := range m.Points {
		p := &m.Points[i]
		if p.Name != profile.ContainerCPUTime && p.Name != profile.ContainerMemoryUsage {
			continue
		}
		key := containerKey{p.Labels[profile.LabelPodUID], p.Labels[profile.LabelContainerID]}
		if key.podUID == "" || key.containerID == "" {
			continue
		}
		var (
			cpu    resource.Quantity
			hasCPU bool
			mem    resource.Quantity
			hasMem bool
		)
		switch p.Name {
		case profile.ContainerCPUTime:
			now := cpuSeen{start: p.Start, value: p.Value, at: m.Time}
			seen[key] = now
			if prev, ok := r.last[key]; ok {
				cpu, hasCPU = cpuRate(prev, now)
			}
		case profile.ContainerMemoryUsage:
			if p.Value >= 0 && !math.IsNaN(p.Value) && !math.IsInf(p.Value, 0) {
				mem, hasMem = *resource.NewQuantity(int64(p.Value), resource.BinarySI), true
			}
		}
		name := p.Labels[profile.LabelContainer]
		if name == "" || (!hasCPU && !hasMem) {
			continue // not named yet (status without its ID, a sandbox), or nothing to tell
		}
		pu := out[key.podUID]
		if pu == nil {
			pu = &threshold.PodUsage{
				Namespace: p.Labels[profile.LabelNamespace],
				Name:      p.Labels[profile.LabelPod],
				Timestamp: m.Time,
			}
			out[key.podUID] = pu
		}
		i := slices.IndexFunc(pu.Containers, func(c threshold.ContainerUsage) bool { return c.Name == name })
		if i < 0 {
			pu.Containers = append(pu.Containers, threshold.ContainerUsage{Name: name})
			i = len(pu.Containers) - 1
		}
		// Two cgroups of one container name (a restart caught in between): the larger counts.
		c := &pu.Containers[i]
		if hasCPU && cpu.Cmp(c.CPU) > 0 {
			c.CPU = cpu
		}
		if hasMem && mem.Cmp(c.Memory) > 0 {
			c.Memory = mem
		}
	}
	r.last = seen
	return out
}

// cpuRate is the CPU used between two readings of one counter divided by the time
// between them, in nanocores; false when the counter restarted or time did not advance.
func cpuRate(prev, now cpuSeen) (resource.Quantity, bool) {
	dt := now.at.Sub(prev.at)
	if !now.start.Equal(prev.start) || now.value < prev.value || dt <= 0 {
		return resource.Quantity{}, false
	}
	nanocores := math.Round((now.value - prev.value) / dt.Seconds() * 1e9)
	if math.IsNaN(nanocores) || math.IsInf(nanocores, 0) || nanocores > math.MaxInt64/2 {
		return resource.Quantity{}, false
	}
	return *resource.NewScaledQuantity(int64(nanocores), resource.Nano), true
}
