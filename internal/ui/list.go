package ui

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/profdiff"
)

// query is the list page's URL query, the CLI's filters by the same names.
type query struct {
	Namespace, Service, Pod, Type, Reason, Since, From, To string
}

func queryOf(v url.Values) query {
	return query{
		Namespace: v.Get("namespace"), Service: v.Get("service"), Pod: v.Get("pod"), Type: v.Get("type"),
		Reason: v.Get("reason"), Since: v.Get("since"), From: v.Get("from"), To: v.Get("to"),
	}
}

// filter is the index.Filter q asks for, with since counted back from now.
func (q query) filter(now time.Time) (index.Filter, error) {
	f := index.Filter{Namespace: q.Namespace, Service: q.Service, Pod: q.Pod, Type: q.Type, Reason: q.Reason}
	err := index.TimeRange{Since: q.Since, From: q.From, To: q.To}.Apply(&f, now, func(key string) string { return key })
	return f, err
}

type listData struct {
	Store     string
	Q         query
	Err       string
	Rows      []row
	Timelines []timeline
	// Merges link the merge of the listed profiles of each type.
	Merges []mergeLink
}

// mergeLink opens the merge of the listed profiles of one type.
type mergeLink struct {
	Type  string
	Count int
	URL   string
}

// mergeLinks are the merge links of the rows the query q lists: one per type, each
// carrying q's filters and that type.
func mergeLinks(q query, es []index.Entry) []mergeLink {
	counts := map[string]int{}
	for _, e := range es {
		if e.Type != "" {
			counts[e.Type]++
		}
	}
	var out []mergeLink
	for _, t := range profdiff.TypesOf(es) {
		tq := q
		tq.Type = t
		out = append(out, mergeLink{Type: t, Count: counts[t], URL: MergeURL(tq.values())})
	}
	return out
}

// row is one listed profile; Viewable is false when its size alone shows that it
// cannot be opened. Error also holds what the index could not read (its metadata),
// which leaves the profile viewable.
type row struct {
	index.Entry
	Viewable bool
}

// list serves the list page: the filter form, the timelines and the table.
func (u *UI) list(w http.ResponseWriter, r *http.Request) {
	d := listData{Store: u.cfg.Index.String(), Q: queryOf(r.URL.Query())}
	f, err := d.Q.filter(u.cfg.Now())
	if err != nil {
		d.Err = err.Error()
		u.render(w, http.StatusBadRequest, "list.html", d)
		return
	}
	es, err := u.cfg.Index.List(r.Context(), f)
	if err != nil {
		u.cfg.Logger.Info("ui list failed", "store", d.Store, "err", err)
		d.Err = err.Error()
		u.render(w, http.StatusBadGateway, "list.html", d)
		return
	}
	for _, e := range es {
		r := row{Entry: e, Viewable: true}
		if msg := u.sizeProblem(e); msg != "" {
			r.Error = strings.TrimPrefix(r.Error+"; "+msg, "; ")
			r.Viewable = false
		}
		d.Rows = append(d.Rows, r)
	}
	d.Timelines = timelines(es)
	d.Merges = mergeLinks(d.Q, es)
	u.render(w, http.StatusOK, "list.html", d)
}

// sizeProblem says why the listed size alone shows that a profile cannot be viewed
// (empty, or over the limit), so the list marks its row before anyone opens it.
func (u *UI) sizeProblem(e index.Entry) string {
	switch {
	case e.Size == 0:
		return index.ErrEmpty.Error()
	case e.Size > u.cfg.MaxProfileBytes:
		return fmt.Sprintf("%s (%s, the limit is %s: kprof ui --max-bytes)", index.ErrTooLarge, index.FormatSize(e.Size), index.FormatSize(u.cfg.MaxProfileBytes))
	}
	return ""
}

// Timeline geometry, in SVG user units.
const (
	timelineWidth = 800
	timelineLeft  = 10
	timelineRight = 790
)

// timeline is one service's captures on a time axis.
type timeline struct {
	Namespace, Service string
	From, To           time.Time
	Marks              []mark
}

type mark struct {
	X         string // SVG x, formatted
	ID        string
	Title     string
	Threshold bool
	Error     bool
}

// timelines groups es by namespace and service, each on the time axis of all of es.
func timelines(es []index.Entry) []timeline {
	var from, to time.Time
	for _, e := range es {
		if e.CapturedAt.IsZero() {
			continue
		}
		if from.IsZero() || e.CapturedAt.Before(from) {
			from = e.CapturedAt
		}
		if e.CapturedAt.After(to) {
			to = e.CapturedAt
		}
	}
	if from.IsZero() {
		return nil
	}
	span := to.Sub(from)
	byKey := map[[2]string]*timeline{}
	var out []*timeline
	for _, e := range es {
		if e.CapturedAt.IsZero() {
			continue
		}
		k := [2]string{e.Namespace, e.Service}
		tl := byKey[k]
		if tl == nil {
			tl = &timeline{Namespace: e.Namespace, Service: e.Service, From: from, To: to}
			byKey[k] = tl
			out = append(out, tl)
		}
		x := float64(timelineLeft+timelineRight) / 2
		if span > 0 {
			x = timelineLeft + float64(e.CapturedAt.Sub(from))/float64(span)*(timelineRight-timelineLeft)
		}
		title := e.CapturedAt.UTC().Format("2006-01-02 15:04:05Z") + " " + e.Type + " " + e.Pod
		if e.Reason != "" {
			title += " (" + e.Reason + ")"
		}
		tl.Marks = append(tl.Marks, mark{
			X: strconv.FormatFloat(x, 'f', 1, 64), ID: e.ID, Title: title,
			Threshold: e.Trigger == index.TriggerThreshold, Error: e.Error != "",
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Service < out[j].Service
	})
	res := make([]timeline, len(out))
	for i, tl := range out {
		res[i] = *tl
	}
	return res
}
