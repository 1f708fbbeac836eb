package datadog

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/kprof/kprof/internal/agent/consumer/pprof"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/serviceid"
)

const (
	// Origin is sent as DD-EVP-ORIGIN.
	Origin = "kprof"
	// maxBodyExcerpt bounds the response body quoted in an error.
	maxBodyExcerpt = 512
	// maxDrain bounds how much of a response body is read to reuse the connection.
	maxDrain = 64 << 10
)

var _ router.Consumer = (*Consumer)(nil)

// Consumer uploads each event to Datadog, one upload per (namespace, pod) of
// its samples, so that each profile carries its pod's tags.
type Consumer struct {
	cfg       Config
	client    *http.Client
	ownClient bool
	version   string

	mu     sync.Mutex
	closed bool
}

// New fills in cfg's defaults, validates it and returns a Consumer.
func New(cfg Config) (*Consumer, error) {
	if err := cfg.build(); err != nil {
		return nil, fmt.Errorf("datadog consumer: %w", err)
	}
	c := &Consumer{cfg: cfg, client: cfg.Client, version: moduleVersion()}
	if c.client == nil {
		c.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		c.ownClient = true
	}
	return c, nil
}

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// Name implements router.Consumer.
func (c *Consumer) Name() string { return "datadog" }

// Consume implements router.Consumer: it converts ev to pprof and uploads it,
// one upload per pod. An event without samples uploads nothing. The errors of
// the uploads are joined.
func (c *Consumer) Consume(ctx context.Context, ev *profile.Event) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return errors.New("datadog: consume after shutdown")
	}
	var errs []error
	for _, g := range splitByPod(ev) {
		if err := c.uploadGroup(ctx, g); err != nil {
			errs = append(errs, fmt.Errorf("datadog: upload config %q pod %s/%s: %w", ev.Config, g.namespace, g.pod, err))
		}
	}
	return errors.Join(errs...)
}

// Shutdown implements router.Consumer. It is idempotent and safe to call at
// any time; it closes the consumer's idle connections.
func (c *Consumer) Shutdown(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && c.ownClient {
		c.client.CloseIdleConnections()
	}
	c.closed = true
	return nil
}

type podGroup struct {
	namespace, pod string
	// service is the identity of the group's samples (serviceid.FromLabels).
	service serviceid.Identity
	ev      *profile.Event
}

// splitByPod returns one shallow copy of ev per (namespace, pod, service) of its
// samples, in a stable order: a pod's processes are one upload, each host
// process's service its own. ev is not modified.
func splitByPod(ev *profile.Event) []podGroup {
	type key struct {
		ns, pod string
		service serviceid.Identity
	}
	idx := map[key]int{}
	var groups []podGroup
	for _, s := range ev.Samples {
		k := key{s.Labels[profile.LabelNamespace], s.Labels[profile.LabelPod], serviceid.FromLabels(s.Labels)}
		i, ok := idx[k]
		if !ok {
			sub := *ev
			sub.Samples = nil
			i = len(groups)
			idx[k] = i
			groups = append(groups, podGroup{namespace: k.ns, pod: k.pod, service: k.service, ev: &sub})
		}
		groups[i].ev.Samples = append(groups[i].ev.Samples, s)
	}
	slices.SortStableFunc(groups, func(a, b podGroup) int {
		return cmp.Or(strings.Compare(a.namespace, b.namespace), strings.Compare(a.pod, b.pod),
			strings.Compare(a.service.Name, b.service.Name))
	})
	return groups
}

// tags returns the tags_profiler value of one upload.
func (c *Consumer) tags(g podGroup) string {
	host := cmp.Or(c.cfg.Host, g.ev.Labels[profile.LabelNode])
	if host == "" {
		host, _ = os.Hostname()
	}
	tags := []string{
		"service:" + cmp.Or(c.cfg.Service, g.service.Name, DefaultService),
		"env:" + c.cfg.Env,
		"version:" + cmp.Or(c.cfg.Version, g.service.Version),
		"host:" + host,
		"profiler:kprof",
		"runtime:" + c.cfg.Family,
	}
	if g.namespace != "" {
		tags = append(tags, "kube_namespace:"+g.namespace)
	}
	if g.pod != "" {
		tags = append(tags, "pod_name:"+g.pod)
	}
	if cl := g.ev.Labels[profile.LabelCluster]; cl != "" {
		tags = append(tags, "kube_cluster_name:"+cl)
	}
	if g.ev.Config != "" {
		tags = append(tags, "kprof_config:"+g.ev.Config)
	}
	tags = append(tags, c.cfg.Tags...)
	for i, t := range tags {
		tags[i] = strings.ReplaceAll(t, ",", "_") // a comma would split the tag
	}
	return strings.Join(tags, ",")
}

func (c *Consumer) uploadGroup(ctx context.Context, g podGroup) error {
	data, err := pprof.Encode(g.ev)
	if err != nil {
		return err
	}
	body, contentType, err := encode(g.ev.Start, g.ev.End, c.cfg.Family, c.tags(g), []attachment{{AttachmentName, data}})
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return c.upload(ctx, body, contentType)
}

// upload posts body, retrying 5xx and network failures after a lifecycle.Backoff
// from RetryBaseDelay to RetryMaxDelay. Other failures are returned at once.
func (c *Consumer) upload(ctx context.Context, body []byte, contentType string) error {
	var err error
	for attempt := 0; ; attempt++ {
		err = c.post(ctx, body, contentType)
		var re *retryableError
		if err == nil || !errors.As(err, &re) {
			return err
		}
		if attempt >= c.cfg.MaxRetries {
			return fmt.Errorf("giving up after %d attempts: %w", attempt+1, err)
		}
		wait := lifecycle.Backoff{Base: c.cfg.RetryBaseDelay, Max: c.cfg.RetryMaxDelay}.Delay(attempt + 1)
		c.cfg.Logger.Warn("profile upload failed, retrying", "attempt", attempt+1, "wait", wait, "err", err)
		if !lifecycle.Wait(ctx, wait) {
			return fmt.Errorf("retry after %w: %w", err, ctx.Err())
		}
	}
}

type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

func (c *Consumer) post(ctx context.Context, body []byte, contentType string) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("DD-EVP-ORIGIN", Origin)
	req.Header.Set("DD-EVP-ORIGIN-VERSION", c.version)
	if c.cfg.key() != "" {
		req.Header.Set("DD-API-KEY", c.cfg.key())
	}
	resp, err := c.client.Do(req)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return c.redact(err) // the caller gave up: no retry
		}
		return &retryableError{c.redact(err)}
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyExcerpt))
	err = fmt.Errorf("POST %s: %s: %q", c.cfg.url, resp.Status, c.redactString(strings.TrimSpace(string(excerpt))))
	switch {
	case resp.StatusCode >= 500:
		return &retryableError{err}
	case resp.StatusCode == http.StatusNotFound && c.cfg.key() == "":
		return fmt.Errorf("%w (the Datadog Agent accepts profiles from version 7.20)", err)
	}
	return err
}

// redact removes the API key from err's text, in case a server or transport
// echoes it.
func (c *Consumer) redact(err error) error {
	if c.cfg.key() == "" || !strings.Contains(err.Error(), c.cfg.key()) {
		return err
	}
	return errors.New(c.redactString(err.Error()))
}

func (c *Consumer) redactString(s string) string {
	if c.cfg.key() == "" {
		return s
	}
	return strings.ReplaceAll(s, c.cfg.key(), redacted)
}
