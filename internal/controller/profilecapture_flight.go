package controller

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/flight"
)

// FlightFetcher asks a node agent's flight recorder for a pod's eBPF CPU profile
// (flight.Client implements it).
type FlightFetcher interface {
	Fetch(ctx context.Context, baseURL string, req flight.Request) (flight.Profile, error)
}

// flightMargin is how long past the window's end a fetch may take: the agent waits
// for its samples to be flushed past the end.
const flightMargin = time.Minute

// flightWindow is what the operator asks for: [crossedAt − W, crossedAt + cpu] for a
// Threshold capture, [created − W, start + cpu] for a user's.
func flightWindow(pcap *profilingv1alpha1.ProfileCapture, w, cpu time.Duration, start time.Time) (time.Time, time.Time) {
	if th := pcap.Spec.Threshold; pcap.Spec.Trigger == profilingv1alpha1.TriggerThreshold && th != nil && !th.CrossedAt.IsZero() {
		return th.CrossedAt.Add(-w), th.CrossedAt.Add(cpu)
	}
	return pcap.CreationTimestamp.Add(-w), start.Add(cpu)
}

// fetchFlight gets the pod's eBPF profile from the agent on its node.
func (r *ProfileCaptureReconciler) fetchFlight(ctx context.Context, pcap *profilingv1alpha1.ProfileCapture, plan *capturePlan, start time.Time) flightOutcome {
	node := plan.pod.Spec.NodeName
	out := flightOutcome{node: node}
	if r.d.Flight == nil {
		out.state = flightDisabled
		return out
	}
	agent, err := r.d.Agents.OnNode(ctx, node)
	if err != nil {
		out.state, out.err = flightFailed, err
		return out
	}
	if agent == nil {
		out.state = flightNoAgent
		return out
	}
	out.from, out.to = flightWindow(pcap, r.d.RecorderWindow, plan.policy.CPUDuration, start)
	base := "http://" + net.JoinHostPort(agent.Status.PodIP, strconv.Itoa(r.d.RecorderPort))
	fctx, cancel := context.WithDeadline(ctx, later(out.to, r.now()).Add(flightMargin))
	defer cancel()
	prof, err := r.d.Flight.Fetch(fctx, base, flight.Request{
		Namespace: plan.pod.Namespace, Pod: plan.pod.Name, From: out.from, To: out.to, Reason: pcap.Spec.Reason,
	})
	if err != nil {
		out.state, out.err = flightFailed, fmt.Errorf("agent %s/%s at %s: %w", agent.Namespace, agent.Name, base, err)
		log.FromContext(ctx).Info("flight recorder fetch failed", "node", node, "agent", agent.Name, "err", err)
		return out
	}
	out.state = flightFetched
	if !prof.Start.IsZero() {
		out.from = prof.Start
	}
	if !prof.End.IsZero() {
		out.to = prof.End
	}
	out.profile = &capture.Profile{Type: profilingv1alpha1.ProfileTypeEBPFCPU, Data: prof.Data, Start: out.from, Duration: out.to.Sub(out.from)}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
