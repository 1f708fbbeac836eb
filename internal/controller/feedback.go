package controller

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/threshold"
)

// Feedback is what flows back to the ProfilingConfig reconciler from the parts it
// drives: the capture engine's results, the stores' uploads, evictions and health
// changes, and the threshold watcher's observations and cooldowns. The reconciler
// drives those parts and they call back into it; Feedback breaks that circle: it is
// built first, each part gets its callbacks from it when built, and the reconciler
// is built last with every dependency at once (NewProfilingConfigReconciler).
type Feedback struct {
	recorder  events.EventRecorder
	results   *results
	states    *syncStates
	cooldowns *cooldowns
}

// FeedbackConfig configures NewFeedback.
type FeedbackConfig struct {
	// Recorder records the Events of configs and pods (required).
	Recorder events.EventRecorder
	// Reader reads without the cache (the summary Events, status.lastTriggers before
	// a check's triggers are recorded) and Writer writes them; nil Reader: no summary
	// Events, cooldowns kept in memory only (tests of the tallies alone).
	Reader client.Reader
	Writer client.Client
	// StatusInterval gathers capture results for this long before they are folded
	// into status (default DefaultStatusInterval); EventInterval is the time between
	// a config's summary Events (default DefaultEventInterval).
	StatusInterval time.Duration
	EventInterval  time.Duration
	Logger         *slog.Logger
}

// NewFeedback returns the Feedback of one ProfilingConfig reconciler.
func NewFeedback(cfg FeedbackConfig) (*Feedback, error) {
	if cfg.Recorder == nil {
		return nil, errors.New("controller feedback: Recorder is required")
	}
	var ew *eventWriter
	var cd *cooldowns
	if cfg.Reader != nil {
		ew = newEventWriter(cfg.Reader, cfg.Writer)
		cd = newCooldowns(cfg.Reader, cfg.Writer)
	} else {
		cd = newCooldowns(nil, nil)
	}
	return &Feedback{
		recorder:  cfg.Recorder,
		results:   newResults(cfg.Recorder, ew, cfg.StatusInterval, cfg.EventInterval, cfg.Logger),
		states:    newSyncStates(),
		cooldowns: cd,
	}, nil
}

// OnResult is the capture engine's result callback (capture.Config.OnResult).
func (f *Feedback) OnResult(res capture.Result) { f.results.OnResult(res) }

// Uploaded counts a profile the remote store confirmed (a Stores callback). It reports
// false, counting nothing, for a config the reconciler does not track (yet).
func (f *Feedback) Uploaded(group string) bool { return f.results.uploaded(group) }

// Evicted reports a spooled profile dropped before upload (a Stores callback).
func (f *Feedback) Evicted(group, key, reason string) { f.results.evicted(group, key, reason) }

// StoreHealthChanged wakes the configs using a store whose health changed (a Stores callback).
func (f *Feedback) StoreHealthChanged(groups []string) {
	f.states.markDirty(groups...)
	for _, g := range groups {
		f.results.wake(g)
	}
}

// Cooldowns is the threshold watcher's cooldown store (status.lastTriggers).
func (f *Feedback) Cooldowns() threshold.CooldownStore { return f.cooldowns }

// ThresholdReporter is the threshold watcher's Reporter: conditions and Events.
func (f *Feedback) ThresholdReporter() threshold.Reporter { return thresholdReporter{f} }

// Start implements manager.Runnable: it writes the summary Events while the manager
// runs and unblocks result delivery when it stops.
func (f *Feedback) Start(ctx context.Context) error {
	lifecycle.Every(ctx, f.results.eventInterval, f.results.writeSummaries)
	f.results.stop()
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: it runs on every
// replica (a standby gets no results, so it only waits).
func (f *Feedback) NeedLeaderElection() bool { return false }
