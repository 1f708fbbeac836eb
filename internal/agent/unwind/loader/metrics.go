package loader

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/promreg"
)

// Reasons of kprof_agent_unwind_frame_pointer_mappings_total.
const (
	ReasonGo              = "go"
	ReasonNoTable         = "no_table"
	ReasonNoRoom          = "no_room"
	ReasonTooManyMappings = "too_many_mappings"
)

// metrics of one Loader: the vectors are shared by the loaders of one registry,
// each with its config label.
type metrics struct {
	tablesLoaded, tablesEvicted, buildErrors prometheus.Counter
	rowsInUse, rowsCached, rowsCapacity      prometheus.Gauge
	processes                                prometheus.Gauge
	processesGone                            prometheus.Counter
	fp                                       map[string]prometheus.Counter
	buildSeconds                             prometheus.Observer
}

func newMetrics(reg prometheus.Registerer, name string) (*metrics, error) {
	// Another collection config's loader may have registered the vectors.
	set := promreg.Shared(reg, "unwind loader metrics")
	fp := set.CounterVec("kprof_agent_unwind_frame_pointer_mappings_total", "File-backed executable mappings loaded with frame-pointer unwinding, by reason: go (a Go binary), no_table (no usable call frame information, or the file could not be read), no_room (the row array is full of tables in use), too_many_mappings (the process has more than the sampler takes).", "config", "reason")
	m := &metrics{
		tablesLoaded:  set.CounterVec("kprof_agent_unwind_tables_loaded_total", "Unwind tables built and written to the kernel's row array.", "config").WithLabelValues(name),
		tablesEvicted: set.CounterVec("kprof_agent_unwind_tables_evicted_total", "Unwind tables no process used that were removed from the kernel to make room or bound the cache.", "config").WithLabelValues(name),
		buildErrors:   set.CounterVec("kprof_agent_unwind_table_build_errors_total", "Unwind tables that could not be built (the file's mappings get frame pointers).", "config").WithLabelValues(name),
		rowsInUse:     set.GaugeVec("kprof_agent_unwind_rows_in_use", "Rows of the kernel's row array held by tables of loaded processes.", "config").WithLabelValues(name),
		rowsCached:    set.GaugeVec("kprof_agent_unwind_rows_cached", "Rows of the kernel's row array held by tables no loaded process uses (evicted when room is needed).", "config").WithLabelValues(name),
		rowsCapacity:  set.GaugeVec("kprof_agent_unwind_rows_capacity", "Size of the kernel's row array.", "config").WithLabelValues(name),
		processes:     set.GaugeVec("kprof_agent_unwind_processes", "Processes whose mappings are loaded in the sampler.", "config").WithLabelValues(name),
		processesGone: set.CounterVec("kprof_agent_unwind_processes_exited_before_load_total", "Processes sampled without an entry that exited before the loader reached them (short-lived processes: their samples keep frame-pointer stacks).", "config").WithLabelValues(name),
		buildSeconds:  set.HistogramVec("kprof_agent_unwind_table_build_seconds", "Time to build one unwind table.", prometheus.ExponentialBuckets(0.0005, 4, 9), "config").WithLabelValues(name),
		fp:            make(map[string]prometheus.Counter),
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	for _, r := range []string{ReasonGo, ReasonNoTable, ReasonNoRoom, ReasonTooManyMappings} {
		m.fp[r] = fp.WithLabelValues(name, r)
	}
	return m, nil
}
