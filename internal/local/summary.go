package local

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/kprof/kprof/internal/capture"
)

// writeSummary prints what was stored where, and how to open a profile.
func writeSummary(w io.Writer, dir string, t tally) {
	fmt.Fprintf(w, "\nStored %d profile(s), %s, in %s", t.stored, humanBytes(t.bytes), dir)
	if t.failed > 0 {
		fmt.Fprintf(w, "; %d capture(s) failed (see the log above)", t.failed)
	}
	if t.cancelled > 0 {
		fmt.Fprintf(w, "; %d cancelled at shutdown", t.cancelled)
	}
	fmt.Fprintln(w)
	if t.stored == 0 {
		return
	}
	types := make([]capture.ProfileType, 0, len(t.latest))
	for typ := range t.latest {
		types = append(types, typ)
	}
	slices.SortFunc(types, func(a, b capture.ProfileType) int {
		return slices.Index(capture.AllTypes, a) - slices.Index(capture.AllTypes, b)
	})
	fmt.Fprintln(w, "Latest of each type:")
	for _, typ := range types {
		fmt.Fprintf(w, "  %-12s %s\n", typ, t.latest[typ])
	}
	fmt.Fprintln(w, "Open one with:")
	fmt.Fprintf(w, "  go tool pprof -top %s\n", shellQuote(t.latest[types[0]]))
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// shellQuote quotes s for a POSIX shell when it has characters that need it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=+@%,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
