package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/profdiff"
)

// Where the merge and diff views live.
const (
	// MergePrefix serves /merge/?FILTERS (which pins the time range and redirects) and
	// /merge/QUERY/-/VIEW: pprof's VIEW of the merge of the profiles QUERY selects.
	MergePrefix = "/merge/"
	// DiffPrefix serves /diff/ID, kprof's page of the functions that grew and shrank
	// from the default base of the threshold capture ID to it, and /diff/ID/-/VIEW,
	// pprof's VIEW of the diff profile.
	DiffPrefix = "/diff/"
)

// diffTop is how many grown and shrunk functions the diff page lists.
const diffTop = 20

// errBadQuery marks a merge query the UI refuses.
var errBadQuery = errors.New("bad merge query")

// MergeURL is the path that merges the profiles the list's query q selects (its
// type set): the handler pins the time range and redirects to the merged flame graph.
func MergeURL(q url.Values) string { return MergePrefix + "?" + q.Encode() }

// DiffURL is the path of the diff page of the threshold capture id.
func DiffURL(id string) string { return DiffPrefix + (&url.URL{Path: id}).EscapedPath() }

// values is q as a URL query, without empty fields.
func (q query) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"namespace": q.Namespace, "service": q.Service, "pod": q.Pod, "type": q.Type,
		"reason": q.Reason, "since": q.Since, "from": q.From, "to": q.To} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// pinned is the query of f with its time range fixed: since becomes from, and an open
// end becomes now, so that every pprof view of one merge shows the same profiles.
func pinned(f index.Filter, now time.Time) url.Values {
	q := query{Namespace: f.Namespace, Service: f.Service, Pod: f.Pod, Type: f.Type, Reason: f.Reason}
	if !f.From.IsZero() {
		q.From = f.From.UTC().Format(time.RFC3339Nano)
	}
	to := f.To
	if to.IsZero() {
		to = now
	}
	q.To = to.UTC().Format(time.RFC3339Nano)
	return q.values()
}

// mergeStart checks the list's query, pins its time range and redirects to the
// merged profile's flame graph. Without a type it names the types of the selection.
func (u *UI) mergeStart(w http.ResponseWriter, r *http.Request) {
	now := u.cfg.Now()
	f, err := queryOf(r.URL.Query()).filter(now)
	if err != nil {
		u.errorPage(w, r, http.StatusBadRequest, err)
		return
	}
	if f.Type == "" {
		es, err := u.cfg.Index.List(r.Context(), f)
		if err != nil {
			u.errorPage(w, r, statusOf(err), err)
			return
		}
		msg := "type: required to merge (profiles of one type merge)"
		if types := profdiff.TypesOf(es); len(types) > 0 {
			msg += fmt.Sprintf("; the %d profiles that match %s are of the types %s", len(es), f, strings.Join(types, ", "))
		}
		u.errorPage(w, r, http.StatusBadRequest, errors.New(msg))
		return
	}
	target := MergePrefix + url.PathEscape(pinned(f, now).Encode()) + viewSep + "flamegraph"
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// merge serves /merge/QUERY/-/VIEW.
func (u *UI) merge(w http.ResponseWriter, r *http.Request) {
	vals, err := url.ParseQuery(r.PathValue("sel"))
	if err != nil {
		u.errorPage(w, r, http.StatusBadRequest, fmt.Errorf("%w %q: %v", errBadQuery, r.PathValue("sel"), err))
		return
	}
	q := queryOf(vals)
	f, err := q.filter(u.cfg.Now())
	switch {
	case err != nil:
		u.errorPage(w, r, http.StatusBadRequest, err)
		return
	case f.Type == "":
		u.errorPage(w, r, http.StatusBadRequest, fmt.Errorf("%w: type: required to merge (profiles of one type merge)", errBadQuery))
		return
	}
	v, err := u.viewer(r.Context(), "merge:"+q.values().Encode(), func(ctx context.Context) (*viewer, error) {
		inputs, err := profdiff.SelectIndex(ctx, u.cfg.Index, f)
		if err != nil {
			return nil, err
		}
		m, err := u.mergeInputs(ctx, inputs)
		if err != nil {
			return nil, err
		}
		h, err := pprofHandlers(fmt.Sprintf("merge of %d %s profiles: %s", m.Inputs, m.Type, f), m.Profile, u.cfg.LocalFiles)
		if err != nil {
			return nil, err
		}
		return &viewer{handlers: h}, nil
	})
	if err != nil {
		u.errorPage(w, r, statusOf(err), err)
		return
	}
	u.servePprof(w, r, v, "/"+r.PathValue("view"))
}

// mergeInputs merges inputs under the UI's limits, in one of the merge slots.
func (u *UI) mergeInputs(ctx context.Context, inputs []profdiff.Input) (*profdiff.Merged, error) {
	select {
	case u.merges <- struct{}{}:
		defer func() { <-u.merges }()
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a merge slot: %w", ctx.Err())
	}
	m, err := profdiff.Merge(ctx, inputs, profdiff.MergeConfig{MaxInputs: u.cfg.MaxMergeProfiles, MaxFileBytes: u.cfg.MaxProfileBytes})
	var le *profdiff.LimitError
	if errors.As(err, &le) && uiLimitFlags[le.Limit] != "" {
		err = fmt.Errorf("%w (kprof ui %s)", err, uiLimitFlags[le.Limit])
	}
	return m, err
}

// uiLimitFlags names the kprof ui flag of each merge limit it sets.
var uiLimitFlags = map[string]string{"MaxInputs": "--max-merge-profiles", "MaxFileBytes": "--max-bytes"}

// diffSummary is what the diff page shows.
type diffSummary struct {
	Target  index.Entry
	Base    string // what the base is
	Summary string // the compared value, the rule and both sets
	Total   string // the change of the total
	// Grew and Shrank are ordered by flat change, GrewCum by cumulative change (which
	// keeps a spike's function on top when its samples land in what it calls, such as
	// runtime.asyncPreempt on a busy machine).
	Grew, GrewCum, Shrank []funcRow
}

// section is one table of the diff page.
type section struct {
	Title, Order, ID string
	Rows             []funcRow
}

type funcRow struct {
	Name                       string
	Flat, BaseFlat, TargetFlat string
	Cum, BaseCum, TargetCum    string
}

// diff serves /diff/ID (kprof's page) and /diff/ID/-/VIEW (pprof's view of the diff).
func (u *UI) diff(w http.ResponseWriter, r *http.Request) {
	id, view := r.PathValue("rest"), ""
	if i := strings.LastIndex("/"+id, viewSep); i >= 0 {
		id, view = id[:max(i-1, 0)], "/"+("/" + id)[i+len(viewSep):]
	}
	if err := index.CheckID(id); err != nil {
		u.errorPage(w, r, http.StatusBadRequest, err)
		return
	}
	v, err := u.viewer(r.Context(), "diff:"+id, func(ctx context.Context) (*viewer, error) { return u.openDiff(ctx, id) })
	if err != nil {
		u.errorPage(w, r, statusOf(err), err)
		return
	}
	if view == "" {
		d := v.diff
		u.render(w, http.StatusOK, "diff.html", struct {
			*diffSummary
			Pprof    string
			Sections []section
		}{d, DiffURL(id) + viewSep, []section{
			{"Grew most", "flat", "grew", d.Grew},
			{"Grew most", "cumulative", "grew-cum", d.GrewCum},
			{"Shrank most", "flat", "shrank", d.Shrank},
		}})
		return
	}
	u.servePprof(w, r, v, view)
}

// openDiff compares the threshold capture id with its default base, as kprof
// profiles diff --target ID does.
func (u *UI) openDiff(ctx context.Context, id string) (*viewer, error) {
	e, err := u.cfg.Index.Stat(ctx, id)
	if err != nil {
		return nil, err
	}
	b, err := profdiff.DefaultBase(ctx, u.cfg.Index, e)
	if err != nil {
		return nil, err
	}
	base, err := u.mergeInputs(ctx, b.Inputs)
	if err != nil {
		return nil, fmt.Errorf("base of %s: %w", id, err)
	}
	target, err := u.mergeInputs(ctx, []profdiff.Input{profdiff.EntryInput(u.cfg.Index, e)})
	if err != nil {
		return nil, err
	}
	d, err := profdiff.Compare(base, target, "")
	if err != nil {
		return nil, fmt.Errorf("compare %s with its base: %w", id, err)
	}
	p, err := d.Profile()
	if err != nil {
		return nil, err
	}
	h, err := pprofHandlers("diff of "+id+" against its base", p, u.cfg.LocalFiles)
	if err != nil {
		return nil, err
	}
	rows := func(fs []profdiff.FuncDelta) []funcRow {
		out := make([]funcRow, len(fs))
		for i, f := range fs {
			out[i] = funcRow{Name: f.Name, Flat: d.Change(f.Flat()), BaseFlat: d.Value(f.BaseFlat), TargetFlat: d.Value(f.TargetFlat),
				Cum: d.Change(f.Cum()), BaseCum: d.Value(f.BaseCum), TargetCum: d.Value(f.TargetCum)}
		}
		return out
	}
	s := &diffSummary{Target: e, Base: b.String(), Summary: d.Summary(),
		Total: fmt.Sprintf("base %s, target %s, change %s", d.Value(d.BaseTotal), d.Value(d.TargetTotal), d.Change(d.TargetTotal-d.BaseTotal)),
		Grew:  rows(d.Grew(diffTop, false)), GrewCum: rows(d.Grew(diffTop, true)), Shrank: rows(d.Shrank(diffTop, false))}
	return &viewer{handlers: h, diff: s}, nil
}
