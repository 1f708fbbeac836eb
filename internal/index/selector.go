package index

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// SelectorKeys are the keys of a selector, the names of the list's filter flags.
var SelectorKeys = []string{"namespace", "service", "pod", "type", "reason", "since", "from", "to"}

// selectorAliases are shorter names of keys ("ns", as kubectl users write it).
var selectorAliases = map[string]string{"ns": "namespace"}

// LooksLikeSelector tells whether s has the shape of a selector, KEY=VALUE[,...]
// with KEY a word of lower-case letters, rather than a profile ID or a file path (the
// part before the first "=" of those holds a "/" or a ".").
func LooksLikeSelector(s string) bool {
	k, _, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return false
	}
	for _, r := range k {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// ParseSelector reads a selector: comma-separated KEY=VALUE pairs that filter the
// store as the list's flags do, e.g. "service=checkout,type=cpu,since=1h" or
// "namespace=shop,service=checkout,reason=schedule,from=2026-12-07T13:00,to=2026-12-07T14:00".
// Keys are SelectorKeys (ns for namespace); since is a positive duration counted
// back from now; from and to take what ParseTime reads. Each key may appear once;
// since and from exclude each other. Errors name the key.
func ParseSelector(s string, now time.Time) (Filter, error) {
	var f Filter
	if strings.TrimSpace(s) == "" {
		return f, errors.New("empty selector: want KEY=VALUE[,KEY=VALUE...], e.g. service=checkout,type=cpu,since=1h")
	}
	seen := map[string]bool{}
	var r TimeRange
	// fields maps each of SelectorKeys to the field its value fills.
	fields := map[string]*string{
		"namespace": &f.Namespace, "service": &f.Service, "pod": &f.Pod, "type": &f.Type, "reason": &f.Reason,
		"since": &r.Since, "from": &r.From, "to": &r.To,
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		if a, ok := selectorAliases[k]; ok {
			k = a
		}
		switch {
		case !ok:
			return f, fmt.Errorf("selector %q: %q is not KEY=VALUE", s, part)
		case !slices.Contains(SelectorKeys, k):
			return f, fmt.Errorf("selector %q: unknown key %q (want %s)", s, k, strings.Join(SelectorKeys, ", "))
		case seen[k]:
			return f, fmt.Errorf("selector %q: %s given twice", s, k)
		case v == "":
			return f, fmt.Errorf("selector %q: %s has no value", s, k)
		}
		seen[k] = true
		*fields[k] = v
	}
	if err := r.Apply(&f, now, func(key string) string { return key }); err != nil {
		return f, fmt.Errorf("selector %q: %w", s, err)
	}
	return f, nil
}

// TimeRange is the time bounds of a listing as a user writes them: the list's
// --since/--from/--to flags, a selector's since/from/to keys, the UI's query.
type TimeRange struct {
	// Since is a positive duration counted back from now, e.g. 1h; "" is none.
	Since string
	// From and To take what ParseTime reads; "" is none.
	From, To string
}

// Apply sets f.From and f.To from r at now: since and from exclude each other, and
// to must come after the start. name gives each field's name as the user wrote it
// (name("since") is "--since" for a flag), which starts its errors.
func (r TimeRange) Apply(f *Filter, now time.Time, name func(field string) string) error {
	if r.Since != "" && r.From != "" {
		return fmt.Errorf("%s and %s: give one of them, not both", name("since"), name("from"))
	}
	if r.Since != "" {
		d, err := time.ParseDuration(r.Since)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s %q: want a positive duration such as 1h or 30m", name("since"), r.Since)
		}
		f.From = now.Add(-d)
	}
	var err error
	if r.From != "" {
		if f.From, err = ParseTime(r.From); err != nil {
			return fmt.Errorf("%s: %w", name("from"), err)
		}
	}
	if r.To != "" {
		if f.To, err = ParseTime(r.To); err != nil {
			return fmt.Errorf("%s: %w", name("to"), err)
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return fmt.Errorf("%s %q: must be after the start %s", name("to"), r.To, f.From.UTC().Format(time.RFC3339))
	}
	return nil
}

// ParseTime reads RFC 3339 (2026-12-07T14:00:00Z), a date-time without zone (UTC)
// or a date (UTC midnight).
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want RFC 3339 (2026-12-07T14:00:00Z), 2026-12-07T14:00 (UTC) or 2026-12-07", s)
}

// Or returns f with each field that f leaves empty taken from d: a selector refined
// by defaults (the command's filter flags).
func (f Filter) Or(d Filter) Filter {
	or := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	f.Namespace, f.Service, f.Pod = or(f.Namespace, d.Namespace), or(f.Service, d.Service), or(f.Pod, d.Pod)
	f.Type, f.Reason = or(f.Type, d.Type), or(f.Reason, d.Reason)
	if f.From.IsZero() && f.To.IsZero() {
		f.From, f.To = d.From, d.To
	}
	return f
}

// IsZero tells whether f matches every entry.
func (f Filter) IsZero() bool { return f == Filter{} }

// String renders f as a selector (times in RFC 3339, UTC), "everything" when it is zero.
func (f Filter) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("namespace", f.Namespace)
	add("service", f.Service)
	add("pod", f.Pod)
	add("type", f.Type)
	add("reason", f.Reason)
	if !f.From.IsZero() {
		add("from", f.From.UTC().Format(time.RFC3339))
	}
	if !f.To.IsZero() {
		add("to", f.To.UTC().Format(time.RFC3339))
	}
	if len(parts) == 0 {
		return "everything"
	}
	return strings.Join(parts, ",")
}
