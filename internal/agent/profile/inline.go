package profile

import "iter"

// InlineGroups yields the frames of a stack (leaf first) in runs that share one
// address and kind: one instruction address whose function was inlined into its
// callers, innermost frame first. Each run is one location in pprof and OTLP and
// one IP in perf.data. The runs are subslices of frames.
func InlineGroups(frames []Frame) iter.Seq[[]Frame] {
	return func(yield func([]Frame) bool) {
		for i := 0; i < len(frames); {
			j := i + 1
			for j < len(frames) && frames[j].Address == frames[i].Address && frames[j].Kernel == frames[i].Kernel {
				j++
			}
			if !yield(frames[i:j]) {
				return
			}
			i = j
		}
	}
}
