// Package perfdata writes profile events as perf.data (PERFILE2) files that
// `perf report` and `perf script` read (package perfdatatest reads them back,
// for tests).
//
// Layout written (see tools/perf/Documentation/perf.data-file-format.txt):
// header | data records | feature section table | feature bodies | ids | attrs.
package perfdata

import "encoding/binary"

var le = binary.LittleEndian

const (
	magic      = "PERFILE2"
	headerSize = 104
	// attrSize is PERF_ATTR_SIZE_VER7.
	attrSize = 128
	// nameAlign is the alignment of strings in feature sections.
	nameAlign = 64
	// maxRecord is the largest record: its size is a u16.
	maxRecord = 0xffff &^ 7
)

// perf_event_attr.type / config.
const (
	typeHardware = 0
	typeSoftware = 1
)

// perf_event_sample_format bits.
const (
	sampleIP        = 1 << 0
	sampleTID       = 1 << 1
	sampleTime      = 1 << 2
	sampleCallchain = 1 << 5
	sampleCPU       = 1 << 7
	samplePeriod    = 1 << 8

	sampleType = sampleIP | sampleTID | sampleTime | sampleCPU | samplePeriod | sampleCallchain
)

// perf_event_attr flag bits.
const (
	flagMmap        = 1 << 8
	flagComm        = 1 << 9
	flagFreq        = 1 << 10
	flagSampleIDAll = 1 << 18
	flagMmap2       = 1 << 23
)

// Record types and misc bits.
const (
	recMmap   = 1
	recComm   = 3
	recSample = 9
	recMmap2  = 10

	miscKernel      = 1
	miscUser        = 2
	miscMmapBuildID = 1 << 14
	miscBuildIDSize = 1 << 15
)

// Callchain context markers.
const (
	contextKernel = 0xffffffffffffff80
	contextUser   = 0xfffffffffffffe00
)

// Feature bits (HEADER_*).
const (
	featBuildID   = 2
	featHostname  = 3
	featOSRelease = 4
	featArch      = 6
	featNrCPUs    = 7
	featEventDesc = 12
)

// sampleIDSize is the sample_id_all trailer of non-sample records:
// pid, tid (TID), time (TIME), cpu, res (CPU).
const sampleIDSize = 24

// eventConfig maps kprof event names to perf (type, config).
var eventConfig = map[string][2]uint64{
	"cpu-clock":        {typeSoftware, 0},
	"task-clock":       {typeSoftware, 1},
	"page-faults":      {typeSoftware, 2},
	"context-switches": {typeSoftware, 3},
	"cpu-cycles":       {typeHardware, 0},
	"instructions":     {typeHardware, 1},
	"cache-misses":     {typeHardware, 3},
}

func align(n, a int) int { return (n + a - 1) / a * a }
