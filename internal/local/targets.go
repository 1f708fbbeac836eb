package local

import (
	"fmt"
	"maps"
	"net/url"
	"time"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/storage"
)

// LocalNamespace fills {namespace} of the key template for a local target without
// a "namespace" label.
const LocalNamespace = "local"

// CaptureTargets turns the targets of a validated config into engine targets. The
// target name is the ID and {target}; {service} is service, else labels["service"],
// else the name; {namespace} is labels["namespace"], else "local"; {pod} is
// labels["pod"], else the name.
func (c *Config) CaptureTargets() []capture.Target {
	out := make([]capture.Target, 0, len(c.Targets))
	for _, t := range c.Targets {
		base, _ := NormalizeBaseURL(t.URL) // validated
		out = append(out, capture.Target{
			ID:      t.Name,
			BaseURL: base,
			Meta: storage.Meta{
				Namespace: firstNonEmpty(t.Labels["namespace"], LocalNamespace),
				Pod:       firstNonEmpty(t.Labels["pod"], t.Name),
				Service:   firstNonEmpty(t.Service, t.Labels["service"], t.Name),
				Target:    t.Name,
				Labels:    maps.Clone(t.Labels),
			},
		})
	}
	return out
}

// Policy returns the capture policy of a validated config, storing into store.
// once disables the schedule.
func (c *Config) Policy(store storage.Store, once bool) capture.Policy {
	interval := c.Interval()
	if once {
		interval = 0
	}
	return capture.Policy{
		Types:       c.Types(),
		CPUDuration: c.CPUDuration(),
		Interval:    interval,
		Store:       store,
		KeyTemplate: c.Storage.KeyTemplate,
		KeyPrefix:   c.Storage.Prefix,
	}
}

// requestTimeout is limits.requestTimeoutSeconds as a duration.
func (l LimitsConfig) requestTimeout() time.Duration {
	return time.Duration(l.RequestTimeoutSeconds) * time.Second
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// URLTarget is the target of `kprof capture URL`: raw is a pprof prefix such as
// http://127.0.0.1:6060/debug/pprof (a trailing slash is fine, and a URL without a
// path means /debug/pprof). service names it in the key, the host name when empty.
func URLTarget(raw, service string) (capture.Target, error) {
	base, err := NormalizeBaseURL(raw)
	if err != nil {
		return capture.Target{}, fmt.Errorf("target URL: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return capture.Target{}, fmt.Errorf("target URL: %w", err)
	}
	if u.Path == "" {
		u.Path = profilingv1alpha1.DefaultPprofPath
	}
	return capture.Target{
		ID:      u.Host,
		BaseURL: u.String(),
		Meta: storage.Meta{
			Namespace: LocalNamespace,
			Pod:       u.Host,
			Service:   firstNonEmpty(service, u.Hostname()),
			Target:    u.Host,
		},
	}, nil
}
