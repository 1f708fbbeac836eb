// Package perfdatatest reads back the perf.data files that package perfdata
// writes, so tests can check what they hold; production code never reads them.
package perfdatatest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxReadBytes bounds the size of a file Read accepts.
const MaxReadBytes = 1 << 30

// File is what Read decodes from a perf.data file.
type File struct {
	Attrs    []Attr
	Comms    []Comm
	Mmaps    []Mmap // MMAP (kernel) and MMAP2 records
	Samples  []SampleRecord
	Features map[int][]byte // feature bit → section bytes
}

// Attr is one perf_event_attr with its ids.
type Attr struct {
	Type, Size        uint32
	Config, Period    uint64
	SampleType, Flags uint64
	IDs               []uint64
}

// Comm is a PERF_RECORD_COMM.
type Comm struct {
	PID, TID int32
	Comm     string
}

// Mmap is a PERF_RECORD_MMAP or MMAP2.
type Mmap struct {
	Type             uint32
	Misc             uint16
	PID, TID         int32
	Addr, Len, Pgoff uint64
	BuildID          []byte // MMAP2 with PERF_RECORD_MISC_MMAP_BUILD_ID
	Prot, Flags      uint32
	Filename         string
}

// SampleRecord is a PERF_RECORD_SAMPLE of sampleType.
type SampleRecord struct {
	Misc      uint16
	IP        uint64
	PID, TID  int32
	Time      uint64
	CPU       uint32
	Period    uint64
	Callchain []uint64
}

// Read decodes the perf.data file at path as written by perfdata.Writer: one attr
// whose sample_type is IP|TID|TIME|CPU|PERIOD|CALLCHAIN.
func Read(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("perfdata: read: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxReadBytes+1))
	if err != nil {
		return nil, fmt.Errorf("perfdata: read %s: %w", path, err)
	}
	if len(b) > MaxReadBytes {
		return nil, fmt.Errorf("perfdata: read %s: larger than %d bytes", path, MaxReadBytes)
	}
	file, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("perfdata: read %s: %w", path, err)
	}
	return file, nil
}

func section(b []byte, at int) ([]byte, uint64, error) {
	if at < 0 || at > len(b)-16 {
		return nil, 0, fmt.Errorf("section header at offset %d out of file", at)
	}
	off, size := le.Uint64(b[at:]), le.Uint64(b[at+8:])
	if off > uint64(len(b)) || size > uint64(len(b))-off {
		return nil, 0, fmt.Errorf("section at header offset %d out of file", at)
	}
	return b[off : off+size], off, nil
}

// Decode decodes the bytes of a perf.data file, as Read does.
func Decode(b []byte) (*File, error) {
	if len(b) < headerSize || string(b[:8]) != magic {
		return nil, errors.New("not a PERFILE2 file")
	}
	if le.Uint64(b[8:]) != headerSize {
		return nil, fmt.Errorf("header size %d, want %d", le.Uint64(b[8:]), headerSize)
	}
	entSize := le.Uint64(b[16:])
	attrs, _, err := section(b, 24)
	if err != nil {
		return nil, err
	}
	data, dataOff, err := section(b, 40)
	if err != nil {
		return nil, err
	}
	out := &File{Features: map[int][]byte{}}
	if entSize < 16+64 || entSize > uint64(len(b)) {
		return nil, fmt.Errorf("attr entry size %d out of range", entSize)
	}
	for a := attrs; len(a) >= int(entSize); a = a[entSize:] {
		at := Attr{
			Type: le.Uint32(a[0:]), Size: le.Uint32(a[4:]), Config: le.Uint64(a[8:]),
			Period: le.Uint64(a[16:]), SampleType: le.Uint64(a[24:]), Flags: le.Uint64(a[40:]),
		}
		ids, _, err := section(b, int(uint64(len(b)-len(a))+entSize-16))
		if err != nil {
			return nil, err
		}
		for ; len(ids) >= 8; ids = ids[8:] {
			at.IDs = append(at.IDs, le.Uint64(ids))
		}
		out.Attrs = append(out.Attrs, at)
	}
	if len(out.Attrs) != 1 || out.Attrs[0].SampleType != sampleType {
		return nil, errors.New("want one attr of sample_type IP|TID|TIME|CPU|PERIOD|CALLCHAIN")
	}
	if err := decodeRecords(data, out); err != nil {
		return nil, err
	}
	// Feature sections follow the data section, in bit order.
	table := dataOff + uint64(len(data))
	n := 0
	for bit := 0; bit < 256; bit++ {
		if le.Uint64(b[72+bit/64*8:])&(1<<(bit%64)) == 0 {
			continue
		}
		sec, _, err := section(b, int(table)+16*n)
		if err != nil {
			return nil, fmt.Errorf("feature %d: %w", bit, err)
		}
		out.Features[bit] = sec
		n++
	}
	return out, nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func decodeRecords(d []byte, out *File) error {
	for len(d) > 0 {
		if len(d) < 8 {
			return errors.New("truncated record header")
		}
		typ, misc, size := le.Uint32(d), le.Uint16(d[4:]), int(le.Uint16(d[6:]))
		if size < 8 || size > len(d) {
			return fmt.Errorf("record of type %d: bad size %d", typ, size)
		}
		r := d[8:size]
		d = d[size:]
		var err error
		switch typ {
		case recComm:
			err = need(r, 8+sampleIDSize)
			if err == nil {
				out.Comms = append(out.Comms, Comm{int32(le.Uint32(r)), int32(le.Uint32(r[4:])), cstring(r[8 : len(r)-sampleIDSize])})
			}
		case recMmap:
			err = need(r, 32+sampleIDSize)
			if err == nil {
				out.Mmaps = append(out.Mmaps, Mmap{Type: typ, Misc: misc, PID: int32(le.Uint32(r)), TID: int32(le.Uint32(r[4:])),
					Addr: le.Uint64(r[8:]), Len: le.Uint64(r[16:]), Pgoff: le.Uint64(r[24:]), Filename: cstring(r[32 : len(r)-sampleIDSize])})
			}
		case recMmap2:
			err = need(r, 64+sampleIDSize)
			if err == nil {
				m := Mmap{Type: typ, Misc: misc, PID: int32(le.Uint32(r)), TID: int32(le.Uint32(r[4:])),
					Addr: le.Uint64(r[8:]), Len: le.Uint64(r[16:]), Pgoff: le.Uint64(r[24:]),
					Prot: le.Uint32(r[56:]), Flags: le.Uint32(r[60:]), Filename: cstring(r[64 : len(r)-sampleIDSize])}
				if misc&miscMmapBuildID != 0 && r[32] <= 20 {
					m.BuildID = append([]byte(nil), r[36:36+int(r[32])]...)
				}
				out.Mmaps = append(out.Mmaps, m)
			}
		case recSample:
			err = need(r, 48)
			if err == nil {
				s := SampleRecord{Misc: misc, IP: le.Uint64(r), PID: int32(le.Uint32(r[8:])), TID: int32(le.Uint32(r[12:])),
					Time: le.Uint64(r[16:]), CPU: le.Uint32(r[24:]), Period: le.Uint64(r[32:])}
				n := le.Uint64(r[40:])
				if n > uint64(len(r)-48)/8 {
					return fmt.Errorf("sample callchain of %d entries overruns record", n)
				}
				for i := uint64(0); i < n; i++ {
					s.Callchain = append(s.Callchain, le.Uint64(r[48+8*i:]))
				}
				out.Samples = append(out.Samples, s)
			}
		}
		if err != nil {
			return fmt.Errorf("record of type %d: %w", typ, err)
		}
	}
	return nil
}

func need(r []byte, n int) error {
	if len(r) < n {
		return fmt.Errorf("%d bytes, want at least %d", len(r), n)
	}
	return nil
}
