package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

// DefaultShutdownGrace is how long in-flight captures may finish once a run stops.
const DefaultShutdownGrace = 10 * time.Second

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	// File is the config file, as returned by Parse, Load or Default.
	File Config
	// Once captures every target once and returns instead of capturing on schedule.
	Once bool
	// Duration, when positive, ends a scheduled run after this long. Not with Once.
	Duration time.Duration
	// ShutdownGrace bounds how long in-flight captures may finish when a scheduled
	// run ends; DefaultShutdownGrace when zero.
	ShutdownGrace time.Duration
	// FlushTimeout bounds how long the end of a run with storage.s3 waits for the
	// spool to upload; DefaultFlushTimeout when zero. Profiles not uploaded by then
	// stay in the spool for the next run: a scheduled run reports them in its
	// summary, a run with Once fails.
	FlushTimeout time.Duration
	// Logger receives structured logs.
	Logger *slog.Logger
	// Out receives the summary printed at the end; nothing is printed when nil.
	Out io.Writer
	// Terminal draws a progress bar of the CPU profiles of a run with Once on
	// Progress, as CaptureOne does; otherwise their progress is logged every
	// DefaultLogEvery.
	Terminal bool
	Progress io.Writer

	// onResult, when set, sees every capture result (tests).
	onResult func(capture.Result)
}

// SetDefaults fills in the zero fields; File is already defaulted (Parse, Load, Default).
func (c *RunnerConfig) SetDefaults() {
	c.Logger = logging.OrDiscard(c.Logger)
	check.Default(&c.ShutdownGrace, DefaultShutdownGrace)
	check.Default(&c.FlushTimeout, DefaultFlushTimeout)
	check.Default(&c.Out, io.Discard)
}

// Validate reports a bad field by name; zero values are valid (SetDefaults fills them).
func (c *RunnerConfig) Validate() error {
	var errs []error
	if err := c.File.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("File: %w", err))
	}
	switch {
	case c.Duration < 0:
		errs = append(errs, fmt.Errorf("Duration: must not be negative, got %s", c.Duration))
	case c.Once && c.Duration > 0:
		errs = append(errs, errors.New("Duration: has no effect with Once"))
	}
	if !c.Once && c.File.Interval() == 0 {
		errs = append(errs, errors.New("File: onDemand.enabled is false, so nothing is scheduled: capture once instead"))
	}
	errs = append(errs, check.NotNegative("ShutdownGrace", c.ShutdownGrace), check.NotNegative("FlushTimeout", c.FlushTimeout))
	if c.Terminal && c.Progress == nil {
		errs = append(errs, errors.New("Progress: required with Terminal"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("local runner config: %w", err)
	}
	return nil
}

// Runner captures the targets of a config file into its storage directory, or into
// S3 through the spool.
type Runner struct {
	cfg RunnerConfig
}

// NewRunner fills in cfg's defaults and validates it.
func NewRunner(cfg RunnerConfig) (*Runner, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Runner{cfg: cfg}, nil
}

// Run captures until ctx is cancelled or Duration has passed, then shuts the engine
// down gracefully; with Once it captures every target once and returns an error
// joining the captures that failed (the others are stored). With storage.s3 the
// profiles go through the spool, which Run drains for up to FlushTimeout at the end:
// with Once, profiles it could not upload make Run fail, naming the store problem
// and the spool; a scheduled run reports them in the summary. Either way they stay
// in the spool for the next run. Run ends by printing a summary to Out.
func (r *Runner) Run(ctx context.Context) error {
	file, log := r.cfg.File, r.cfg.Logger
	var prog *cpuProgress
	if r.cfg.Once {
		prog = newCPUProgress(cpuProgressConfig{Types: file.Types(), Targets: len(file.Targets), CPUDuration: file.CPUDuration(),
			Terminal: r.cfg.Terminal, Out: r.cfg.Progress, Logger: log})
	}
	s, err := r.open(ctx, prog)
	if err != nil {
		return err
	}
	if err := s.engine.Start(ctx); err != nil {
		_ = s.drain(ctx, 0) // stops the spool; nothing of this run is in it
		return err
	}
	targets := file.CaptureTargets()
	policy := file.Policy(s.store, r.cfg.Once)
	log = log.With("store", s.where, "types", file.ProfileTypes)

	if r.cfg.Once {
		log.Info("capturing every target once", "targets", len(targets), "cpuSeconds", file.CPUProfileDurationSeconds)
		prog.beforeRound()
		err := s.captureAll(ctx, targets, policy)
		prog.stop()
		s.shutdown(ctx, r.cfg.ShutdownGrace)
		// A cancelled ctx (an interrupt) ends the wait for uploads too: the profiles are safe in the spool.
		err = errors.Join(err, s.drain(ctx, r.cfg.FlushTimeout))
		writeSummary(r.cfg.Out, s)
		return err
	}

	s.engine.Sync(Group, policy, targets)
	log.Info("capturing on schedule; the first round of each target starts within one interval",
		"targets", len(targets), "interval", policy.Interval.String(), "cpuSeconds", file.CPUProfileDurationSeconds)
	var timeout <-chan time.Time
	if r.cfg.Duration > 0 {
		t := time.NewTimer(r.cfg.Duration)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		log.Info("stopping", "reason", context.Cause(ctx).Error(), "grace", r.cfg.ShutdownGrace.String())
	case <-timeout:
		log.Info("stopping", "reason", "duration reached", "duration", r.cfg.Duration.String(), "grace", r.cfg.ShutdownGrace.String())
	}
	s.shutdown(ctx, r.cfg.ShutdownGrace)
	// Cancelling ctx is how a scheduled run is stopped: the uploads get their own time.
	if err := s.drain(context.WithoutCancel(ctx), r.cfg.FlushTimeout); err != nil {
		log.Error("profiles left in the spool", "err", err)
	}
	writeSummary(r.cfg.Out, s)
	return nil
}

// open builds the session of the config file: its store (a directory, or S3 behind
// a started spool) and its engine (not started), whose results prog, when set, sees.
func (r *Runner) open(ctx context.Context, prog *cpuProgress) (*session, error) {
	st := r.cfg.File.Storage
	onResult := r.cfg.onResult
	if prog != nil {
		onResult = func(res capture.Result) {
			prog.onResult(res)
			if r.cfg.onResult != nil {
				r.cfg.onResult(res)
			}
		}
	}
	s, err := newSession(r.cfg.File.Limits, r.cfg.Logger, onResult, nil)
	if err != nil {
		return nil, err
	}
	if !st.UsesS3() {
		return s, s.openDir(st.Local.Path)
	}
	if err := s.openS3(ctx, st); err != nil {
		return nil, err
	}
	return s, s.start(ctx)
}
