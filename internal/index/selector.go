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
	var since time.Duration
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
		var err error
		switch k {
		case "namespace":
			f.Namespace = v
		case "service":
			f.Service = v
		case "pod":
			f.Pod = v
		case "type":
			f.Type = v
		case "reason":
			f.Reason = v
		case "since":
			if since, err = time.ParseDuration(v); err != nil || since <= 0 {
				return f, fmt.Errorf("selector %q: since %q: want a positive duration such as 1h or 30m", s, v)
			}
			f.From = now.Add(-since)
		case "from":
			if f.From, err = ParseTime(v); err != nil {
				return f, fmt.Errorf("selector %q: from: %w", s, err)
			}
		case "to":
			if f.To, err = ParseTime(v); err != nil {
				return f, fmt.Errorf("selector %q: to: %w", s, err)
			}
		}
	}
	if seen["since"] && seen["from"] {
		return f, fmt.Errorf("selector %q: since and from: give one of them, not both", s)
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, fmt.Errorf("selector %q: to must be after the start %s", s, f.From.UTC().Format(time.RFC3339))
	}
	return f, nil
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
