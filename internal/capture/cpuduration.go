package capture

import "time"

// How long a CPU profile may be, so that scheduled rounds of one target never overlap.
//
// A scheduled round starts every Interval ± Jitter·Interval (DefaultJitter, 10%), so the
// next round can start as early as Interval − Interval/10 after this one. The round
// fetches the CPU profile (CPUDuration) and then the other types and stores them, for
// which CPURoundSlack is kept. Hence the one rule, applied by the ProfilingConfig CRD (a
// CEL rule), the chart (templates/_validate.tpl) and local mode:
//
//	cpuProfileDurationSeconds ≤ intervalSeconds − ceil(intervalSeconds/10) − 5
//
// and, when cpuProfileDurationSeconds is not set, it is min(30, that bound): 22 s at the
// minimum interval of 30 s, 30 s from an interval of 39 s on.
const (
	// DefaultCPUDurationSeconds is a CPU profile's length when neither the config nor
	// the interval asks for less.
	DefaultCPUDurationSeconds = 30
	// CPURoundSlackSeconds is the time a round keeps after its CPU profile for the
	// other profile types and the stores.
	CPURoundSlackSeconds = 5
)

// MaxCPUDurationSeconds is the longest CPU profile a schedule of intervalSeconds
// allows: intervalSeconds − ceil(intervalSeconds/10) − CPURoundSlackSeconds. It is
// below 1 when the interval is too short to profile CPU at all.
func MaxCPUDurationSeconds(intervalSeconds int) int {
	return intervalSeconds - (intervalSeconds+9)/10 - CPURoundSlackSeconds
}

// DefaultCPUDurationSecondsFor is the CPU profile length used when none is
// configured: min(DefaultCPUDurationSeconds, MaxCPUDurationSeconds(intervalSeconds)),
// at least 1; DefaultCPUDurationSeconds when there is no schedule (intervalSeconds 0).
func DefaultCPUDurationSecondsFor(intervalSeconds int) int {
	if intervalSeconds <= 0 {
		return DefaultCPUDurationSeconds
	}
	return max(1, min(DefaultCPUDurationSeconds, MaxCPUDurationSeconds(intervalSeconds)))
}

// MinIntervalSecondsFor is the shortest schedule interval that allows a CPU profile
// of cpuSeconds: the least i with MaxCPUDurationSeconds(i) ≥ cpuSeconds.
func MinIntervalSecondsFor(cpuSeconds int) int {
	i := max(cpuSeconds, 1) + CPURoundSlackSeconds
	for MaxCPUDurationSeconds(i) < cpuSeconds {
		i++
	}
	return i
}

// DefaultCPUDuration is DefaultCPUDurationSecondsFor for a schedule of interval
// (0: none), as a duration.
func DefaultCPUDuration(interval time.Duration) time.Duration {
	return time.Duration(DefaultCPUDurationSecondsFor(int(interval/time.Second))) * time.Second
}
