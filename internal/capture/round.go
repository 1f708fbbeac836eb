package capture

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/kprof/kprof/internal/storage"
)

// CaptureNow runs one round for t synchronously: every type of p in order,
// honouring the concurrency limit, and returns one Result per type. When t.ID is
// a target of group, the round waits for that target's running round (rounds of
// one target never overlap) and is cancelled if the target is removed. reason
// defaults to "manual". An invalid policy yields failed Results with reason
// InvalidPolicy (one with an empty Type when p has no types).
func (e *Engine) CaptureNow(ctx context.Context, groupName string, t Target, p Policy, reason string) []Result {
	if reason == "" {
		reason = ReasonManual
	}
	if err := p.Validate(); err != nil {
		return e.failAll(groupName, t, p, reason, &failure{FailureInvalidPolicy, err})
	}
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		return e.failAll(groupName, t, p, reason, &failure{FailureCanceled, errShutdown})
	}
	r := e.lookup(groupName, t.ID)
	e.wg.Add(1)
	e.mu.Unlock()
	defer e.wg.Done()

	storeCtx, cancelStore := mergeCancel(ctx, e.hardCtx)
	defer cancelStore()
	fetchCtx := storeCtx
	if r != nil {
		var cancelFetch context.CancelFunc
		fetchCtx, cancelFetch = mergeCancel(storeCtx, r.ctx)
		defer cancelFetch()
		select {
		case r.busy <- struct{}{}:
			defer func() { <-r.busy }()
		case <-fetchCtx.Done():
			return e.failAll(groupName, t, p, reason,
				classify(fetchCtx, fetchCtx, "wait for the running round of the target", fetchCtx.Err()))
		}
	}
	return e.round(fetchCtx, storeCtx, nil, groupName, t, p, reason)
}

// round captures every type of p for t in order, after taking a concurrency
// slot. fetchCtx governs the requests, storeCtx the stores. When stop closes
// while the round waits for a slot, the round is dropped without results.
func (e *Engine) round(fetchCtx, storeCtx context.Context, stop <-chan struct{}, groupName string, t Target, p Policy, reason string) []Result {
	select {
	case e.sem <- struct{}{}:
	case <-fetchCtx.Done():
		return e.failAll(groupName, t, p, reason,
			classify(fetchCtx, fetchCtx, "wait for a capture slot", fetchCtx.Err()))
	case <-stop:
		e.log.V(1).Info("dropping scheduled round that was waiting for a slot at shutdown", "group", groupName, "target", t.Name())
		return nil
	}
	defer func() { <-e.sem }()
	e.cfg.Metrics.roundStarted()
	defer e.cfg.Metrics.roundDone()

	results := make([]Result, 0, len(p.Types))
	for _, typ := range p.Types {
		res := e.captureOne(fetchCtx, storeCtx, groupName, t, p, typ, reason)
		e.report(res)
		results = append(results, res)
	}
	return results
}

// captureOne fetches, validates and stores one profile type of t.
func (e *Engine) captureOne(fetchCtx, storeCtx context.Context, groupName string, t Target, p Policy, typ ProfileType, reason string) Result {
	clk := e.cfg.Clock
	started := clk.Now()
	res := Result{Group: groupName, Target: t, Type: typ, Reason: reason, Started: started}
	fail := func(f *failure) Result {
		res.Duration = clk.Since(started)
		res.Err = fmt.Errorf("capture %s %s: %w", t.Name(), typ, f.err)
		res.FailureReason = f.reason
		return res
	}
	if err := fetchCtx.Err(); err != nil {
		return fail(classify(fetchCtx, fetchCtx, "fetch", err))
	}

	timeout := e.cfg.RequestTimeout
	var cpuDur time.Duration
	secs := 0
	if typ == TypeCPU {
		secs = cpuSeconds(p.CPUDuration)
		cpuDur = time.Duration(secs) * time.Second
		timeout += cpuDur
	}
	body, f := e.fetch(fetchCtx, profileURL(t.BaseURL, typ, secs), timeout)
	if f != nil {
		return fail(f)
	}

	meta := t.Meta
	meta.Labels = maps.Clone(t.Meta.Labels)
	if meta.Target == "" {
		meta.Target = t.Name()
	}
	meta.Type = string(typ)
	meta.Reason = reason
	meta.CapturedAt = started.UTC()
	meta.Duration = cpuDur
	tmpl := p.KeyTemplate
	if tmpl == "" {
		tmpl = storage.DefaultKeyTemplate
	}
	key := storage.RenderKey(tmpl, p.KeyPrefix, meta)

	putCtx, cancel := context.WithTimeout(storeCtx, e.cfg.StoreTimeout)
	err := p.Store.Put(putCtx, key, body, meta)
	cancel()
	if err != nil {
		reasonCode := FailureStoreFailed
		if storeCtx.Err() != nil {
			reasonCode = FailureCanceled
		}
		return fail(&failure{reasonCode, fmt.Errorf("store %s in %s: %w", key, p.Store, err)})
	}
	res.Key = key
	res.Bytes = len(body)
	res.Duration = clk.Since(started)
	return res
}

// failAll returns (and reports) a failed Result for every type of p, or a single
// one with an empty Type when p has none.
func (e *Engine) failAll(groupName string, t Target, p Policy, reason string, f *failure) []Result {
	types := p.Types
	if len(types) == 0 {
		types = []ProfileType{""}
	}
	now := e.cfg.Clock.Now()
	results := make([]Result, 0, len(types))
	for _, typ := range types {
		res := Result{
			Group: groupName, Target: t, Type: typ, Reason: reason, Started: now,
			Err:           fmt.Errorf("capture %s %s: %w", t.Name(), typ, f.err),
			FailureReason: f.reason,
		}
		e.report(res)
		results = append(results, res)
	}
	return results
}

// report records res in metrics and logs and hands it to OnResult.
func (e *Engine) report(res Result) {
	e.cfg.Metrics.observe(res)
	kv := []any{"group", res.Group, "target", res.Target.Name(), "type", res.Type, "reason", res.Reason}
	switch {
	case res.Err == nil:
		e.log.V(1).Info("captured profile", append(kv, "key", res.Key, "bytes", res.Bytes, "duration", res.Duration)...)
	case res.FailureReason == FailureCanceled:
		e.log.V(1).Info("capture cancelled", append(kv, "error", res.Err.Error())...)
	default:
		e.log.Error(res.Err, "capture failed", append(kv, "failure", res.FailureReason)...)
	}
	if e.cfg.OnResult != nil {
		e.cfg.OnResult(res)
	}
}

// mergeCancel returns a context derived from parent that is also cancelled, with
// the same cause, when other is done.
func mergeCancel(parent, other context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	stopAfter := context.AfterFunc(other, func() { cancel(context.Cause(other)) })
	return ctx, func() {
		stopAfter()
		cancel(context.Canceled)
	}
}
