package local

import (
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/kprof/kprof/internal/capture"
)

// writeSummary prints what was stored where, and how to open a profile. With S3
// it also says what was uploaded, evicted and left in the spool.
func writeSummary(w io.Writer, s *session) {
	t := s.snapshot()
	if s.remote != nil {
		writeRemoteSummary(w, s.where, s.remote, t)
		return
	}
	fmt.Fprintf(w, "\nStored %d profile(s), %s, in %s", t.stored, humanBytes(t.bytes), s.where)
	writeFailures(w, t)
	fmt.Fprintln(w)
	types := latestTypes(t)
	if len(types) == 0 {
		return
	}
	writeLatest(w, t, types)
	fmt.Fprintln(w, "Open one with:")
	fmt.Fprintf(w, "  go tool pprof -top %s\n", shellQuote(t.latest[types[0]]))
}

// writeRemoteSummary is the summary of a run to S3.
func writeRemoteSummary(w io.Writer, where string, r *spooledS3, t tally) {
	fmt.Fprintf(w, "\nCaptured %d profile(s), %s; uploaded %d to %s", t.stored, humanBytes(t.bytes), t.uploaded, where)
	if r.endpoint != "" {
		fmt.Fprintf(w, " (endpoint %s)", r.endpoint)
	}
	writeFailures(w, t)
	fmt.Fprintln(w)
	if t.uploadedEarlier > 0 {
		fmt.Fprintf(w, "Also uploaded %d profile(s) an earlier run left in the spool.\n", t.uploadedEarlier)
	}
	if len(t.evicted) > 0 {
		reasons := slices.Sorted(maps.Keys(t.evicted))
		parts := make([]string, 0, len(reasons))
		n := 0
		for _, reason := range reasons {
			parts = append(parts, fmt.Sprintf("%s: %d", reason, t.evicted[reason]))
			n += t.evicted[reason]
		}
		fmt.Fprintf(w, "%d profile(s) were evicted from the spool without upload (%s).\n", n, strings.Join(parts, ", "))
	}
	if t.pending > 0 {
		fmt.Fprintf(w, "%d profile(s) still spooled in %s; they are uploaded by the next kprof run with the same spool (storage.spool.path).\n",
			t.pending, r.dir)
	}
	types := latestTypes(t)
	if len(types) == 0 {
		return
	}
	writeLatest(w, t, types)
	url := t.latest[types[0]]
	file := "./" + path.Base(url)
	fmt.Fprintln(w, "Fetch and open one with:")
	cp := "aws s3 cp"
	if r.endpoint != "" {
		cp += " --endpoint-url " + shellQuote(r.endpoint)
	}
	fmt.Fprintf(w, "  %s %s %s && go tool pprof -top %s\n", cp, shellQuote(url), shellQuote(file), shellQuote(file))
}

// writeFailures appends the failed and cancelled captures to a summary line.
func writeFailures(w io.Writer, t tally) {
	if t.failed > 0 {
		fmt.Fprintf(w, "; %d capture(s) failed (see the log above)", t.failed)
	}
	if t.cancelled > 0 {
		fmt.Fprintf(w, "; %d cancelled at shutdown", t.cancelled)
	}
}

// latestTypes are the types with a latest profile, in capture.AllTypes order.
func latestTypes(t tally) []capture.ProfileType {
	types := slices.Collect(maps.Keys(t.latest))
	slices.SortFunc(types, func(a, b capture.ProfileType) int {
		return slices.Index(capture.AllTypes, a) - slices.Index(capture.AllTypes, b)
	})
	return types
}

func writeLatest(w io.Writer, t tally, types []capture.ProfileType) {
	fmt.Fprintln(w, "Latest of each type:")
	for _, typ := range types {
		fmt.Fprintf(w, "  %-12s %s\n", typ, t.latest[typ])
	}
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
