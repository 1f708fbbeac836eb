package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
	"github.com/kprof/kprof/internal/storage"
)

// CaptureOneConfig configures CaptureOne.
type CaptureOneConfig struct {
	// Target is where to capture from. BaseURL is required.
	Target capture.Target
	// Types to capture, in order; DefaultProfileTypes when empty.
	Types []capture.ProfileType
	// CPUDuration is the CPU profile length; DefaultCPUProfileDurationSeconds when zero.
	CPUDuration time.Duration
	// Dir is where profiles are stored; DefaultStoragePath when empty.
	Dir string
	// KeyTemplate lays out files below Dir; storage.DefaultKeyTemplate when empty.
	KeyTemplate string
	// Limits bound the capture; zero fields get the config file defaults.
	Limits LimitsConfig
	// Terminal draws a progress bar of the CPU profile on Progress; otherwise
	// progress is logged every DefaultLogEvery.
	Terminal bool
	Progress io.Writer
	Logger   *slog.Logger
	// Out receives the stored file paths at the end; nothing is printed when nil.
	Out io.Writer
	// HTTPClient fetches the profiles (e.g. through pods/portforward); nil: direct.
	HTTPClient *http.Client
}

// SetDefaults fills in the zero fields and normalizes Target.BaseURL.
func (c *CaptureOneConfig) SetDefaults() {
	c.Logger = logging.OrDiscard(c.Logger)
	if base, err := NormalizeBaseURL(c.Target.BaseURL); err == nil {
		c.Target.BaseURL = base
	}
	check.Default(&c.Target.ID, c.Target.Name())
	check.Default(&c.Target.ID, c.Target.BaseURL)
	if len(c.Types) == 0 {
		for _, s := range DefaultProfileTypes {
			c.Types = append(c.Types, capture.ProfileType(s))
		}
	}
	check.Default(&c.CPUDuration, DefaultCPUProfileDurationSeconds*time.Second)
	if strings.TrimSpace(c.Dir) == "" {
		c.Dir = DefaultStoragePath
	}
	check.Default(&c.KeyTemplate, storage.DefaultKeyTemplate)
	c.Limits.setDefaults()
	check.Default(&c.Out, io.Discard)
}

// Validate reports a bad field of a defaulted config by name.
func (c *CaptureOneConfig) Validate() error {
	var errs []error
	if _, err := NormalizeBaseURL(c.Target.BaseURL); err != nil {
		errs = append(errs, fmt.Errorf("Target.BaseURL: %w", err))
	}
	for i, t := range c.Types {
		if _, err := capture.ParseProfileType(string(t)); err != nil {
			errs = append(errs, fmt.Errorf("Types[%d]: %w", i, err))
		} else if j := slices.Index(c.Types, t); j < i {
			errs = append(errs, fmt.Errorf("Types[%d]: duplicate %q (also Types[%d])", i, t, j))
		}
	}
	if c.CPUDuration < time.Second || c.CPUDuration > maxCPUProfileSeconds*time.Second || c.CPUDuration%time.Second != 0 {
		errs = append(errs, fmt.Errorf("CPUDuration: must be whole seconds from 1s to %ds, got %s", maxCPUProfileSeconds, c.CPUDuration))
	}
	if err := storage.ValidateKeyTemplate(c.KeyTemplate); err != nil {
		errs = append(errs, fmt.Errorf("KeyTemplate: %w", err))
	}
	errs = append(errs, c.Limits.validate("Limits")...)
	if c.Terminal && c.Progress == nil {
		errs = append(errs, errors.New("Progress: required with Terminal"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("capture config: %w", err)
	}
	return nil
}

// CaptureOne captures each type of one target once into Dir, showing the progress of
// the CPU profile, and prints the stored files. It returns the failed captures
// joined; the successful ones are stored regardless.
func CaptureOne(ctx context.Context, cfg CaptureOneConfig) error {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	prog := newCPUProgress(cpuProgressConfig{Types: cfg.Types, Targets: 1, CPUDuration: cfg.CPUDuration,
		Terminal: cfg.Terminal, Out: cfg.Progress, Logger: cfg.Logger})
	s, err := newSession(cfg.Limits, cfg.Logger, prog.onResult, cfg.HTTPClient)
	if err != nil {
		return err
	}
	if err := s.openDir(cfg.Dir); err != nil {
		return err
	}
	if err := s.engine.Start(ctx); err != nil {
		return err
	}
	policy := capture.Policy{Types: cfg.Types, CPUDuration: cfg.CPUDuration, Store: s.store, KeyTemplate: cfg.KeyTemplate}
	cfg.Logger.Info("capturing", "target", cfg.Target.Name(), "url", cfg.Target.BaseURL, "types", cfg.Types, "dir", s.where)

	prog.beforeRound()
	err = s.captureAll(ctx, []capture.Target{cfg.Target}, policy)
	prog.stop()
	s.shutdown(ctx, DefaultShutdownGrace)
	writeSummary(cfg.Out, s)
	return err
}
