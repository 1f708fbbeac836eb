package perfdatatest

import "encoding/binary"

// The parts of the perf.data format (tools/perf/Documentation/perf.data-file-format.txt
// and linux/perf_event.h) the reader decodes. They are written out again here rather
// than shared with package perfdata, whose tests import this one: a shared value
// would also hide a writer's mistake from the reader.

var le = binary.LittleEndian

const (
	magic      = "PERFILE2"
	headerSize = 104
)

// sampleType is IP|TID|TIME|CALLCHAIN|CPU|PERIOD, the one sample_type perfdata writes.
const sampleType = 1<<0 | 1<<1 | 1<<2 | 1<<5 | 1<<7 | 1<<8

// Record types and the misc bit of an MMAP2 that carries a build ID.
const (
	recMmap   = 1
	recComm   = 3
	recSample = 9
	recMmap2  = 10

	miscMmapBuildID = 1 << 14
)

// sampleIDSize is the sample_id_all trailer of non-sample records:
// pid, tid (TID), time (TIME), cpu, res (CPU).
const sampleIDSize = 24
