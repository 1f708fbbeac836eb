package storage

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
)

// DefaultKeyTemplate is the layout used when a policy does not set one.
const DefaultKeyTemplate = "{prefix}/{namespace}/{service}/{date}/{timestamp}_{pod}_{type}.pb.gz"

// TimestampLayout is the format of the {timestamp} placeholder (UTC, millisecond precision,
// sortable, no characters that need escaping in S3 keys or file names).
const TimestampLayout = "20060102T150405.000Z"

// placeholderRE matches anything in braces, so a placeholder that is not a known
// name ({service-name}, {Pod}, {}) is caught by ValidateKeyTemplate rather than
// left in keys as literal text.
var placeholderRE = regexp.MustCompile(`\{([^{}]*)\}`)

// Placeholders lists every placeholder a key template may use, in the order the
// docs give them. The ProfilingConfig CRD's keyTemplate rule lists the same names.
var Placeholders = []string{"{prefix}", "{namespace}", "{service}", "{pod}", "{node}", "{container}",
	"{target}", "{type}", "{date}", "{timestamp}", "{unix}"}

// knownPlaceholders renders every name of Placeholders.
var knownPlaceholders = map[string]func(m Meta, prefix string) string{
	"prefix":    func(_ Meta, p string) string { return p },
	"namespace": func(m Meta, _ string) string { return m.Namespace },
	"pod":       func(m Meta, _ string) string { return m.Pod },
	"node":      func(m Meta, _ string) string { return m.Node },
	"service":   func(m Meta, _ string) string { return m.Service },
	"container": func(m Meta, _ string) string { return m.Container },
	"target":    func(m Meta, _ string) string { return m.Target },
	"type":      func(m Meta, _ string) string { return m.Type },
	"date":      func(m Meta, _ string) string { return m.CapturedAt.UTC().Format("2006-01-02") },
	"timestamp": func(m Meta, _ string) string { return m.CapturedAt.UTC().Format(TimestampLayout) },
	"unix":      func(m Meta, _ string) string { return fmt.Sprintf("%d", m.CapturedAt.Unix()) },
}

// ValidateKeyTemplate reports every unknown placeholder (anything in braces that
// is not one of Placeholders, listing the known ones) and a template that cannot
// produce distinct keys per capture (it must contain {timestamp} or {unix} and {type}).
func ValidateKeyTemplate(tmpl string) error {
	if strings.TrimSpace(tmpl) == "" {
		return fmt.Errorf("key template is empty")
	}
	var unknown []string
	for _, m := range placeholderRE.FindAllStringSubmatch(tmpl, -1) {
		if _, ok := knownPlaceholders[m[1]]; !ok && !slices.Contains(unknown, m[0]) {
			unknown = append(unknown, m[0])
		}
	}
	if len(unknown) > 0 {
		word := "placeholder"
		if len(unknown) > 1 {
			word = "placeholders"
		}
		return fmt.Errorf("key template %q: unknown %s %s (known: %s)", tmpl, word,
			strings.Join(unknown, ", "), strings.Join(Placeholders, " "))
	}
	if !strings.Contains(tmpl, "{type}") {
		return fmt.Errorf("key template %q: must contain {type}", tmpl)
	}
	if !strings.Contains(tmpl, "{timestamp}") && !strings.Contains(tmpl, "{unix}") {
		return fmt.Errorf("key template %q: must contain {timestamp} or {unix}", tmpl)
	}
	return nil
}

// RenderKey expands tmpl for meta. Each placeholder value is sanitized so it cannot
// introduce path separators or traversal; empty values become "unknown", except
// {prefix}, whose empty value removes its segment. The result is a clean relative
// slash-separated key.
func RenderKey(tmpl, prefix string, meta Meta) string {
	prefix = strings.Trim(cleanPrefix(prefix), "/")
	out := placeholderRE.ReplaceAllStringFunc(tmpl, func(ph string) string {
		name := ph[1 : len(ph)-1]
		f, ok := knownPlaceholders[name]
		if !ok {
			return ph
		}
		v := f(meta, prefix)
		if name == "prefix" {
			return v
		}
		v = sanitizeSegment(v)
		if v == "" {
			return "unknown"
		}
		return v
	})
	// Drop empty segments (an empty prefix) and clean.
	parts := strings.Split(out, "/")
	kept := parts[:0]
	for _, p := range parts {
		if p != "" && p != "." && p != ".." {
			kept = append(kept, p)
		}
	}
	return path.Clean(strings.Join(kept, "/"))
}

// cleanPrefix keeps a multi-segment prefix but removes traversal.
func cleanPrefix(p string) string {
	segs := strings.Split(p, "/")
	kept := segs[:0]
	for _, s := range segs {
		s = sanitizeSegment(s)
		if s != "" {
			kept = append(kept, s)
		}
	}
	return strings.Join(kept, "/")
}

// sanitizeSegment maps a value to characters safe in file names and S3 keys.
func sanitizeSegment(v string) string {
	var b strings.Builder
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
	}
	s := b.String()
	if strings.Trim(s, ".") == "" {
		return ""
	}
	// A leading dot would make a hidden file, or collide with names stores reserve
	// for themselves (the fs store's ".tmp-*" temporary files).
	if s[0] == '.' {
		s = "_" + s[1:]
	}
	return s
}
