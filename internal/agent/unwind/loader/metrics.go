package loader

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
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
	label := []string{"config"}
	tablesLoaded := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kprof_agent_unwind_tables_loaded_total",
		Help: "Unwind tables built and written to the kernel's row array.",
	}, label)
	tablesEvicted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kprof_agent_unwind_tables_evicted_total",
		Help: "Unwind tables no process used that were removed from the kernel to make room or bound the cache.",
	}, label)
	buildErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kprof_agent_unwind_table_build_errors_total",
		Help: "Unwind tables that could not be built (the file's mappings get frame pointers).",
	}, label)
	rowsInUse := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kprof_agent_unwind_rows_in_use",
		Help: "Rows of the kernel's row array held by tables of loaded processes.",
	}, label)
	rowsCached := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kprof_agent_unwind_rows_cached",
		Help: "Rows of the kernel's row array held by tables no loaded process uses (evicted when room is needed).",
	}, label)
	rowsCapacity := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kprof_agent_unwind_rows_capacity",
		Help: "Size of the kernel's row array.",
	}, label)
	processes := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kprof_agent_unwind_processes",
		Help: "Processes whose mappings are loaded in the sampler.",
	}, label)
	processesGone := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kprof_agent_unwind_processes_exited_before_load_total",
		Help: "Processes sampled without an entry that exited before the loader reached them (short-lived processes: their samples keep frame-pointer stacks).",
	}, label)
	fp := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kprof_agent_unwind_frame_pointer_mappings_total",
		Help: "File-backed executable mappings loaded with frame-pointer unwinding, by reason: go (a Go binary), no_table (no usable call frame information, or the file could not be read), no_room (the row array is full of tables in use), too_many_mappings (the process has more than the sampler takes).",
	}, []string{"config", "reason"})
	buildSeconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kprof_agent_unwind_table_build_seconds",
		Help:    "Time to build one unwind table.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
	}, label)

	cs := []prometheus.Collector{tablesLoaded, tablesEvicted, buildErrors, rowsInUse, rowsCached, rowsCapacity, processes, fp, buildSeconds, processesGone}
	if reg != nil {
		for i, c := range cs {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, fmt.Errorf("register unwind loader metrics: %w", err)
				}
				cs[i] = are.ExistingCollector // another collector's loader registered it
			}
		}
	}
	tablesLoaded, tablesEvicted, buildErrors = cs[0].(*prometheus.CounterVec), cs[1].(*prometheus.CounterVec), cs[2].(*prometheus.CounterVec)
	rowsInUse, rowsCached, rowsCapacity, processes = cs[3].(*prometheus.GaugeVec), cs[4].(*prometheus.GaugeVec), cs[5].(*prometheus.GaugeVec), cs[6].(*prometheus.GaugeVec)
	fp, buildSeconds = cs[7].(*prometheus.CounterVec), cs[8].(*prometheus.HistogramVec)
	processesGone = cs[9].(*prometheus.CounterVec)

	m := &metrics{
		tablesLoaded:  tablesLoaded.WithLabelValues(name),
		tablesEvicted: tablesEvicted.WithLabelValues(name),
		buildErrors:   buildErrors.WithLabelValues(name),
		rowsInUse:     rowsInUse.WithLabelValues(name),
		rowsCached:    rowsCached.WithLabelValues(name),
		rowsCapacity:  rowsCapacity.WithLabelValues(name),
		processes:     processes.WithLabelValues(name),
		processesGone: processesGone.WithLabelValues(name),
		buildSeconds:  buildSeconds.WithLabelValues(name),
		fp:            make(map[string]prometheus.Counter),
	}
	for _, r := range []string{ReasonGo, ReasonNoTable, ReasonNoRoom, ReasonTooManyMappings} {
		m.fp[r] = fp.WithLabelValues(name, r)
	}
	return m, nil
}
