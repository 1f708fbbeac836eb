package capture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	return e.Capture(ctx, Request{Group: groupName, Target: t, Policy: p, Reason: reason})
}

// Request asks for one round of one target now (see Capture).
type Request struct {
	// Group the round is reported under; when Target.ID is a target of it, the
	// round is serialised with that target's scheduled rounds.
	Group string
	// Target is a target of Group, or an ad-hoc one.
	Target Target
	// Policy gives the types, the CPU duration and the store; Interval is ignored.
	Policy Policy
	// Reason is stored with the profiles; default "manual".
	Reason string
	// ResetSchedule pushes the next scheduled round of a known target one interval
	// away, so a triggered round and the schedule do not capture back to back.
	ResetSchedule bool
}

// Capture runs one round of req.Target synchronously, like CaptureNow, and
// returns one Result per type; each stored one carries its Location, size and
// the SHA256 of the stored bytes.
func (e *Engine) Capture(ctx context.Context, req Request) []Result {
	groupName, t, p, reason := req.Group, req.Target, req.Policy, req.Reason
	if reason == "" {
		reason = ReasonManual
	}
	if err := p.Validate(); err != nil {
		return e.failAll(groupName, t, p, reason, &failure{FailureInvalidPolicy, err})
	}
	e.mu.Lock()
	if e.guard.ShutDown() {
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
		if req.ResetSchedule {
			e.sched.reset(r)
		}
	}
	return e.round(fetchCtx, storeCtx, nil, groupName, t, p, reason)
}

// Profile is a profile obtained elsewhere (the node agent's eBPF profile of a
// pod) that StoreProfile stores like a captured one.
type Profile struct {
	// Type names it in the key and the metadata, e.g. "ebpf-cpu".
	Type ProfileType
	// Data is the pprof profile, gzipped or not; stored unchanged.
	Data []byte
	// Start and Duration say what the profile covers.
	Start    time.Time
	Duration time.Duration
}

// StoreProfile validates prof as pprof (with the engine's size limits) and stores
// it through p's store and key template for t, like a captured profile, and
// reports the Result.
func (e *Engine) StoreProfile(ctx context.Context, groupName string, t Target, p Policy, reason string, prof Profile) Result {
	if reason == "" {
		reason = ReasonManual
	}
	res := Result{Group: groupName, Target: t, Type: prof.Type, Reason: reason, Started: prof.Start, Duration: prof.Duration}
	fail := func(f *failure) Result {
		res.Err = fmt.Errorf("store %s %s profile: %w", t.Name(), prof.Type, f.err)
		res.FailureReason = f.reason
		e.report(res)
		return res
	}
	switch {
	case p.Store == nil:
		return fail(&failure{FailureInvalidPolicy, fmt.Errorf("policy: Store is required")})
	case prof.Type == "":
		return fail(&failure{FailureInvalidPolicy, fmt.Errorf("profile type is empty")})
	case int64(len(prof.Data)) > e.cfg.MaxProfileBytes:
		return fail(&failure{FailureTooLarge, fmt.Errorf("%d bytes exceed the limit of %d bytes", len(prof.Data), e.cfg.MaxProfileBytes)})
	}
	if p.KeyTemplate != "" {
		if err := storage.ValidateKeyTemplate(p.KeyTemplate); err != nil {
			return fail(&failure{FailureInvalidPolicy, fmt.Errorf("policy: KeyTemplate: %w", err)})
		}
	}
	if f := validatePprof(prof.Data, e.cfg.MaxDecompressedBytes); f != nil {
		return fail(f)
	}
	e.mu.Lock()
	if e.guard.ShutDown() {
		e.mu.Unlock()
		return fail(&failure{FailureCanceled, errShutdown})
	}
	e.wg.Add(1)
	e.mu.Unlock()
	defer e.wg.Done()
	storeCtx, cancel := mergeCancel(ctx, e.hardCtx)
	defer cancel()
	if f := e.store(storeCtx, &res, t, p, prof.Data, prof.Duration); f != nil {
		return fail(f)
	}
	e.report(res)
	return res
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
		e.log.Debug("dropping scheduled round that was waiting for a slot at shutdown", "group", groupName, "target", t.Name())
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
	if f := e.store(storeCtx, &res, t, p, body, cpuDur); f != nil {
		return fail(f)
	}
	res.Duration = clk.Since(started)
	return res
}

// store hands body unchanged to p's store under the key p's template gives res's
// target, type and start, and fills in res's Key, Location, Bytes and SHA256.
func (e *Engine) store(storeCtx context.Context, res *Result, t Target, p Policy, body []byte, dur time.Duration) *failure {
	meta := t.Meta
	meta.Labels = maps.Clone(t.Meta.Labels)
	if meta.Target == "" {
		meta.Target = t.Name()
	}
	meta.Type = string(res.Type)
	meta.Reason = res.Reason
	meta.CapturedAt = res.Started.UTC()
	meta.Duration = dur
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
		return &failure{reasonCode, fmt.Errorf("store %s in %s: %w", key, p.Store, err)}
	}
	sum := sha256.Sum256(body)
	res.Key = key
	res.Location = storage.Location(p.Store, key)
	res.Bytes = len(body)
	res.SHA256 = hex.EncodeToString(sum[:])
	return nil
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
		e.log.Debug("captured profile", append(kv, "key", res.Key, "bytes", res.Bytes, "duration", res.Duration)...)
	case res.FailureReason == FailureCanceled:
		e.log.Debug("capture cancelled", append(kv, "err", res.Err)...)
	case e.cfg.QuietFailures:
		e.log.Debug("capture failed", append(kv, "failure", res.FailureReason, "err", res.Err)...)
	default:
		e.log.Error("capture failed", append(kv, "failure", res.FailureReason, "err", res.Err)...)
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
