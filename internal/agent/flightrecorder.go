package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/kprof/kprof/internal/agent/attribute"
	"github.com/kprof/kprof/internal/agent/recorder"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/flight"
)

// Defaults of the flight recorder (the agent's flags).
const (
	DefaultRecorderWindow    = recorder.DefaultWindow
	DefaultRecorderMaxBytes  = recorder.DefaultMaxBytes
	DefaultRecorderAddr      = ":9092"
	DefaultRecorderTokenFile = "/var/run/kprof/recorder/token"
)

// setRecorderDefaults fills in the flight recorder's bound, and its address when it is on.
func (c *Config) setRecorderDefaults() {
	check.Default(&c.RecorderMaxBytes, DefaultRecorderMaxBytes)
	if c.RecorderWindow > 0 {
		check.Default(&c.RecorderAddr, DefaultRecorderAddr)
	}
}

// validateRecorder reports the bad flight recorder fields.
func (c *Config) validateRecorder() []error {
	var errs []error
	if c.RecorderWindow < 0 {
		errs = append(errs, fmt.Errorf("RecorderWindow: must not be negative (0 disables the recorder), got %s", c.RecorderWindow))
	}
	return append(errs, check.NotNegative("RecorderMaxBytes", c.RecorderMaxBytes))
}

// newRecorder returns the flight recorder, nil when the window is 0.
func newRecorder(cfg Config) (*recorder.Recorder, error) {
	if cfg.RecorderWindow <= 0 {
		return nil, nil
	}
	r, err := recorder.New(recorder.Config{
		Window:   cfg.RecorderWindow,
		MaxBytes: cfg.RecorderMaxBytes,
		Registry: cfg.Registry,
		Logger:   cfg.Logger.With("logger", "recorder"),
	})
	if err != nil {
		return nil, fmt.Errorf("flight recorder: %w", err)
	}
	return r, nil
}

// Recorder is the agent's flight recorder, nil when disabled. Its Pin keeps a
// pod's samples for a capture (nil-safe: a nil *Recorder pins nothing).
func (a *Agent) Recorder() *recorder.Recorder { return a.recorder }

// RecorderAddr is the address the flight recorder's endpoint listens on after
// Start ("" when disabled or not started).
func (a *Agent) RecorderAddr() string { return a.servers.flightAddr() }

// newFlightHandler returns the flight recorder's endpoint, nil when its
// address is "0" or unset. Without a recorder it answers 503 (disabled).
func (a *Agent) newFlightHandler(cfg Config) (http.Handler, error) {
	if cfg.RecorderAddr == "" || cfg.RecorderAddr == "0" {
		return nil, nil
	}
	hc := flight.HandlerConfig{
		Node:   cfg.NodeName,
		Token:  flight.FileToken(cfg.RecorderTokenFile),
		Locate: a.locatePod,
		Logger: cfg.Logger.With("logger", "flight"),
	}
	if a.recorder != nil {
		hc.Source = flightSource{r: a.recorder, node: cfg.NodeName}
	}
	h, err := flight.NewHandler(hc)
	if err != nil {
		return nil, fmt.Errorf("flight recorder endpoint: %w", err)
	}
	return h, nil
}

// locatePod tells the flight endpoint whether a pod is on this node, from the
// pod informer, or why the agent cannot attribute samples to pods.
func (a *Agent) locatePod(namespace, pod string) error {
	err := a.attributor.PodOnNode(namespace, pod)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, attribute.ErrPodNotOnNode):
		return flight.ErrPodNotOnNode
	case errors.Is(err, attribute.ErrNoCluster):
		return &flight.StatusError{Code: http.StatusServiceUnavailable,
			Message: fmt.Sprintf("agent on node %s runs without a cluster: no sample is attributed to a pod", a.cfg.NodeName)}
	default:
		return &flight.StatusError{Code: http.StatusServiceUnavailable, Message: fmt.Sprintf("agent on node %s %v", a.cfg.NodeName, err)}
	}
}

// flightSource serves the recorder to the flight endpoint.
type flightSource struct {
	r    *recorder.Recorder
	node string
}

func (s flightSource) WaitFlushed(ctx context.Context, t time.Time) error {
	return s.r.WaitFlushed(ctx, t)
}

func (s flightSource) Interval() time.Duration { return s.r.Interval() }

func (s flightSource) Profile(namespace, pod string, from, to time.Time, reason string) (flight.Profile, error) {
	data, w, err := s.r.Profile(namespace, pod, from, to, reason)
	switch {
	case errors.Is(err, recorder.ErrNotRecorded):
		return flight.Profile{}, &flight.StatusError{Code: http.StatusNotFound, Message: fmt.Sprintf("agent on node %s: %v", s.node, err)}
	case errors.Is(err, recorder.ErrClosed):
		return flight.Profile{}, &flight.StatusError{Code: http.StatusServiceUnavailable, Message: fmt.Sprintf("agent on node %s is shutting down", s.node)}
	case err != nil:
		return flight.Profile{}, err
	}
	return flight.Profile{Data: data, Start: w.Start, End: w.End}, nil
}
