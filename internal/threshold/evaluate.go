package threshold

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/inf.v0"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Basis chooses what a usage percentage is relative to.
type Basis string

const (
	// BasisRequest measures usage against the container's request, falling back to
	// its limit when it has no request. The default.
	BasisRequest Basis = "Request"
	// BasisLimit measures usage against the container's limit, falling back to its
	// request when it has no limit.
	BasisLimit Basis = "Limit"
)

// Resources a rule watches, as they appear in Crossing.Resource.
const (
	ResourceCPU    = "cpu"
	ResourceMemory = "memory"
)

// Rule says when a pod's usage triggers a capture.
type Rule struct {
	// CPUPercent of the basis at or above which CPU usage crosses; 0 disables CPU.
	CPUPercent int32
	// MemoryPercent of the basis at or above which memory usage crosses; 0 disables memory.
	MemoryPercent int32
	// Basis is Request (default when empty) or Limit.
	Basis Basis
	// Containers restricts the rule to these container names; empty means all.
	Containers []string
	// Cooldown after a trigger during which the same pod does not trigger again.
	Cooldown time.Duration
}

// Validate reports every problem of r by field name. A rule with both
// thresholds at 0 is rejected: it could never trigger.
func (r Rule) Validate() error {
	var errs []error
	if r.CPUPercent < 0 {
		errs = append(errs, fmt.Errorf("CPUPercent %d is negative", r.CPUPercent))
	}
	if r.MemoryPercent < 0 {
		errs = append(errs, fmt.Errorf("MemoryPercent %d is negative", r.MemoryPercent))
	}
	if r.CPUPercent == 0 && r.MemoryPercent == 0 {
		errs = append(errs, errors.New("CPUPercent and MemoryPercent are both 0: the rule can never trigger"))
	}
	switch r.Basis {
	case "", BasisRequest, BasisLimit:
	default:
		errs = append(errs, fmt.Errorf("Basis %q is neither %s nor %s", r.Basis, BasisRequest, BasisLimit))
	}
	if r.Cooldown < 0 {
		errs = append(errs, fmt.Errorf("Cooldown %s is negative", r.Cooldown))
	}
	for _, c := range r.Containers {
		if c == "" {
			errs = append(errs, errors.New("Containers has an empty name"))
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("trigger rule: %w", err)
	}
	return nil
}

// Crossing is one container's usage of one resource at or above its threshold.
type Crossing struct {
	// Resource is "cpu" or "memory".
	Resource string
	// Container whose usage crossed.
	Container string
	// Percent is usage / basis · 100, rounded down to 6 decimals (never up, so a
	// usage just below the threshold never shows as at it).
	Percent float64
	// Threshold in percent that was reached.
	Threshold int32
	// Basis actually used: "request" or "limit".
	Basis string
	// PodContainers is how many containers the pod runs; Reason names Container
	// when there are several.
	PodContainers int
}

// Reason describes c for a profile's metadata, an Event and status, e.g.
// "cpu 93% of request ≥ 80%" or, in a pod with several containers,
// "cpu 93% of request ≥ 80% (container app)". The percentage is rounded down.
func (c Crossing) Reason() string {
	var b strings.Builder
	b.WriteString(c.Resource)
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(math.Floor(c.Percent), 'f', 0, 64))
	b.WriteString("% of ")
	b.WriteString(c.Basis)
	b.WriteString(" ≥ ")
	b.WriteString(strconv.FormatInt(int64(c.Threshold), 10))
	b.WriteByte('%')
	if c.PodContainers > 1 && c.Container != "" {
		b.WriteString(" (container ")
		b.WriteString(c.Container)
		b.WriteByte(')')
	}
	return b.String()
}

// severity is how far c is past its threshold, relative to it (1 = at the threshold).
func (c Crossing) severity() float64 {
	if c.Threshold <= 0 {
		return 0
	}
	return c.Percent / float64(c.Threshold)
}

// Decision is the outcome of evaluating one pod.
type Decision struct {
	// Trigger is true when a capture should start now: a crossing outside the cooldown.
	Trigger bool
	// Crossing is the largest crossing relative to its threshold, nil when none;
	// it is set in the cooldown too, for observability.
	Crossing *Crossing
	// InCooldown is true while lastTrigger + Cooldown is after now.
	InCooldown bool
	// CooldownUntil is lastTrigger + Cooldown (zero without a previous trigger).
	CooldownUntil time.Time
	// Uncomputable lists the percentages that cannot be computed, e.g.
	// "container app: no cpu request or limit". The other containers and
	// resources are still evaluated.
	Uncomputable []string
}

// Evaluate decides whether pod, using u, triggers a capture under r at now,
// given its previous trigger at lastTrigger (zero: never).
//
// For every container of the pod (regular containers and restartable init
// containers, i.e. native sidecars) selected by r.Containers, and every resource
// whose threshold is not 0, the percentage is usage / basis · 100 where the basis
// is the request or the limit as r.Basis says. A container without either gets
// an Uncomputable entry for that resource, never a division by zero. Usage at or
// above the threshold crosses; the comparison is exact decimal arithmetic on the
// quantities, not floating point. Containers reported in u but absent from the
// spec (ephemeral debug containers) and spec containers without usage (not
// started, not yet scraped) are skipped.
func Evaluate(pod *corev1.Pod, u PodUsage, r Rule, lastTrigger time.Time, now time.Time) Decision {
	var d Decision
	if !lastTrigger.IsZero() {
		d.CooldownUntil = lastTrigger.Add(r.Cooldown)
		d.InCooldown = d.CooldownUntil.After(now)
	}
	if pod == nil {
		return d
	}

	containers := specContainers(pod)
	selected := containers[:0:0]
	for _, c := range containers {
		if len(r.Containers) == 0 || slices.Contains(r.Containers, c.Name) {
			selected = append(selected, c)
		}
	}
	if len(selected) == 0 && len(r.Containers) > 0 && len(containers) > 0 {
		d.Uncomputable = append(d.Uncomputable, "no container named "+strings.Join(r.Containers, ", "))
	}

	usage := make(map[string]ContainerUsage, len(u.Containers))
	for _, cu := range u.Containers {
		usage[cu.Name] = cu
	}

	for _, c := range selected {
		cu, hasUsage := usage[c.Name]
		for _, res := range []struct {
			name      string
			threshold int32
			usage     resource.Quantity
		}{
			{ResourceCPU, r.CPUPercent, cu.CPU},
			{ResourceMemory, r.MemoryPercent, cu.Memory},
		} {
			if res.threshold <= 0 {
				continue
			}
			basis, basisName, ok := pickBasis(c.Resources, corev1.ResourceName(res.name), r.Basis)
			if !ok {
				d.Uncomputable = append(d.Uncomputable, uncomputable(c.Name, res.name, r.Basis))
				continue
			}
			if !hasUsage {
				continue
			}
			if !atLeast(res.usage, basis, res.threshold) {
				continue
			}
			x := Crossing{
				Resource:      res.name,
				Container:     c.Name,
				Percent:       percent(res.usage, basis),
				Threshold:     res.threshold,
				Basis:         basisName,
				PodContainers: len(containers),
			}
			// Strictly greater: on a tie the first in spec order (cpu before memory) wins.
			if d.Crossing == nil || x.severity() > d.Crossing.severity() {
				d.Crossing = &x
			}
		}
	}
	d.Trigger = d.Crossing != nil && !d.InCooldown
	return d
}

// specContainers returns the containers that run for the pod's lifetime: the
// regular ones and the restartable init containers (native sidecars).
func specContainers(pod *corev1.Pod) []corev1.Container {
	out := make([]corev1.Container, 0, len(pod.Spec.Containers)+len(pod.Spec.InitContainers))
	out = append(out, pod.Spec.Containers...)
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			out = append(out, c)
		}
	}
	return out
}

// pickBasis returns the quantity usage of res is measured against, and its name
// ("request" or "limit"). A zero or negative quantity counts as missing.
func pickBasis(rr corev1.ResourceRequirements, res corev1.ResourceName, b Basis) (resource.Quantity, string, bool) {
	type option struct {
		list corev1.ResourceList
		name string
	}
	order := []option{{rr.Requests, "request"}, {rr.Limits, "limit"}}
	if b == BasisLimit {
		order[0], order[1] = order[1], order[0]
	}
	for _, o := range order {
		if q, ok := o.list[res]; ok && q.Sign() > 0 {
			return q, o.name, true
		}
	}
	return resource.Quantity{}, "", false
}

func uncomputable(container, res string, b Basis) string {
	if b == BasisLimit {
		return fmt.Sprintf("container %s: no %s limit or request", container, res)
	}
	return fmt.Sprintf("container %s: no %s request or limit", container, res)
}

// atLeast reports usage · 100 ≥ basis · threshold, exactly: Quantity.Mul falls
// back to arbitrary-precision decimals when int64 would overflow, and nanocores
// are compared as nanocores (MilliValue would round 799.5m up to 800m).
func atLeast(usage, basis resource.Quantity, threshold int32) bool {
	lhs := usage.DeepCopy() // DeepCopy: Mul must not write through a shared *inf.Dec
	lhs.Mul(100)
	rhs := basis.DeepCopy()
	rhs.Mul(int64(threshold))
	return lhs.Cmp(rhs) >= 0
}

// percent returns usage / basis · 100 rounded down to 6 decimals. basis must be positive.
func percent(usage, basis resource.Quantity) float64 {
	u := usage.DeepCopy()
	b := basis.DeepCopy()
	num := new(inf.Dec).Mul(u.AsDec(), inf.NewDec(100, 0))
	q := new(inf.Dec).QuoRound(num, b.AsDec(), 6, inf.RoundFloor)
	f, err := strconv.ParseFloat(q.String(), 64)
	if err != nil { // cannot happen: inf.Dec prints a plain decimal
		return 0
	}
	return f
}
