package perfdata

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/kprof/kprof/internal/agent/profile"
)

// Writer writes events to one perf.data file at Path, atomically (temp file
// in the same directory, then rename).
type Writer struct {
	Path string
}

// Write writes evs, which must share EventName, Period and Frequency, as one
// perf.data file. A Sample with Count N becomes one SAMPLE record whose
// PERIOD is N × the sampling period, so perf report's overhead percentages
// (weighted by period) equal the shares of kprof's counts.
func (w Writer) Write(evs ...*profile.Event) error {
	if len(evs) == 0 {
		return errors.New("perfdata: write: no events")
	}
	s, err := create(w.Path, evs[0])
	if err != nil {
		return err
	}
	for _, ev := range evs {
		if err := s.add(ev); err != nil {
			s.abort()
			return err
		}
	}
	return s.finish()
}

// stream is a perf.data file being written: records are appended as events
// come, the header, attrs and features are written on finish.
type stream struct {
	path, tmp string
	f         *os.File
	bw        *bufio.Writer
	attr      []byte
	evName    string
	period    uint64 // period of one sample, in event units
	dataSize  int64
	comms     map[[2]int32]string
	mmaps     map[mmapKey]bool
	kernel    bool
	buildIDs  map[string]buildIDEntry
	buf       []byte
}

type mmapKey struct {
	pid         int32
	start, size uint64
	file        string
}

type buildIDEntry struct {
	id     []byte
	kernel bool
}

func create(path string, ev *profile.Event) (*stream, error) {
	tc, ok := eventConfig[ev.EventName]
	if !ok {
		return nil, fmt.Errorf("perfdata: event %q: unknown event name", ev.EventName)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("perfdata: create %s: %w", path, err)
	}
	s := &stream{
		path: path, tmp: f.Name(), f: f, bw: bufio.NewWriterSize(f, 1<<16),
		evName: ev.EventName, comms: map[[2]int32]string{}, mmaps: map[mmapKey]bool{},
		buildIDs: map[string]buildIDEntry{},
	}
	s.period = samplePeriodOf(ev)
	s.attr = encodeAttr(tc[0], tc[1], ev)
	if _, err := s.bw.Write(make([]byte, headerSize)); err != nil {
		s.abort()
		return nil, fmt.Errorf("perfdata: write %s: %w", path, err)
	}
	return s, nil
}

// samplePeriodOf is the event units one sample stands for.
func samplePeriodOf(ev *profile.Event) uint64 {
	switch {
	case ev.Period > 0:
		return ev.Period
	case ev.Frequency > 0 && (ev.EventName == "cpu-clock" || ev.EventName == "task-clock"):
		return 1e9 / ev.Frequency
	default:
		return 1
	}
}

func encodeAttr(typ, config uint64, ev *profile.Event) []byte {
	a := make([]byte, attrSize)
	le.PutUint32(a[0:], uint32(typ))
	le.PutUint32(a[4:], attrSize)
	le.PutUint64(a[8:], config)
	flags := uint64(flagMmap | flagComm | flagMmap2 | flagSampleIDAll)
	if ev.Period > 0 {
		le.PutUint64(a[16:], ev.Period)
	} else {
		le.PutUint64(a[16:], ev.Frequency)
		flags |= flagFreq
	}
	le.PutUint64(a[24:], sampleType)
	le.PutUint64(a[40:], flags)
	return a
}

func (s *stream) abort() {
	s.f.Close()
	os.Remove(s.tmp)
}

// size is the bytes written so far (data records plus header).
func (s *stream) size() int64 { return headerSize + s.dataSize }

func (s *stream) emit(typ uint32, misc uint16, body []byte) error {
	if 8+len(body) > maxRecord {
		return fmt.Errorf("perfdata: record of %d bytes is too large", 8+len(body))
	}
	var h [8]byte
	le.PutUint32(h[0:], typ)
	le.PutUint16(h[4:], misc)
	le.PutUint16(h[6:], uint16(8+len(body)))
	s.bw.Write(h[:])
	if _, err := s.bw.Write(body); err != nil {
		return fmt.Errorf("perfdata: write %s: %w", s.path, err)
	}
	s.dataSize += int64(8 + len(body))
	return nil
}

func (s *stream) sampleID(pid, tid int32, t uint64) {
	s.buf = le.AppendUint32(s.buf, uint32(pid))
	s.buf = le.AppendUint32(s.buf, uint32(tid))
	s.buf = le.AppendUint64(s.buf, t)
	s.buf = le.AppendUint64(s.buf, 0) // cpu, res
}

func (s *stream) appendString(str string) {
	n := align(len(str)+1, 8)
	s.buf = append(s.buf, str...)
	s.buf = append(s.buf, make([]byte, n-len(str))...)
}

// add appends the records of ev: COMM and MMAP2 of its processes first seen,
// then its samples, timed evenly within [Start, End].
func (s *stream) add(ev *profile.Event) error {
	if ev.EventName != s.evName || samplePeriodOf(ev) != s.period {
		return fmt.Errorf("perfdata: event %q period %d does not match file's %q period %d",
			ev.EventName, samplePeriodOf(ev), s.evName, s.period)
	}
	t0 := uint64(ev.Start.UnixNano())
	if err := s.addKernelMmap(ev, t0); err != nil {
		return err
	}
	for i := range ev.Samples {
		if err := s.addProcess(&ev.Samples[i], t0); err != nil {
			return err
		}
	}
	span := uint64(0)
	if ev.End.After(ev.Start) {
		span = uint64(ev.End.Sub(ev.Start))
	}
	n := uint64(len(ev.Samples))
	for i := range ev.Samples {
		t := t0
		if n > 1 {
			t += span * uint64(i) / (n - 1)
		}
		if err := s.addSample(&ev.Samples[i], t); err != nil {
			return err
		}
	}
	return nil
}

func (s *stream) addKernelMmap(ev *profile.Event, t uint64) error {
	if s.kernel {
		return nil
	}
	// Written even when no sample has kernel frames: like perf record, every file
	// carries the kernel map, or perf report warns that kernel maps were restricted.
	text := kernelText()
	if text == 0 {
		return nil
	}
	s.kernel = true
	// perf matches kernel samples to /proc/kallsyms through the running kernel's
	// build ID; without it, perf report warns that no suitable kallsyms was found.
	if id := kernelBuildID(); id != nil {
		s.buildIDs[profile.KernelMappingFile] = buildIDEntry{id: id, kernel: true}
	}
	s.buf = s.buf[:0]
	s.buf = le.AppendUint32(s.buf, ^uint32(0)) // pid -1: the kernel
	s.buf = le.AppendUint32(s.buf, 0)
	s.buf = le.AppendUint64(s.buf, text)
	s.buf = le.AppendUint64(s.buf, ^uint64(0)-text)
	s.buf = le.AppendUint64(s.buf, text)
	s.appendString(profile.KernelMappingFile + "_text")
	s.sampleID(-1, 0, t)
	return s.emit(recMmap, miscKernel, s.buf)
}

// commOf is the thread's command name as perf shows it: the comm label, else
// the executable's base name, else "pid:N"; cut at a NUL (perf reads C strings).
func commOf(sm *profile.Sample) string {
	cut := func(s string) string {
		if i := strings.IndexByte(s, 0); i >= 0 {
			return s[:i]
		}
		return s
	}
	if c := cut(sm.Labels[profile.LabelComm]); c != "" {
		return c
	}
	if c := cut(filepath.Base(sm.Labels[profile.LabelExe])); sm.Labels[profile.LabelExe] != "" && c != "" {
		return c
	}
	return fmt.Sprintf("pid:%d", sm.PID)
}

func (s *stream) addProcess(sm *profile.Sample, t uint64) error {
	comm := commOf(sm)
	key := [2]int32{sm.PID, sm.TID}
	if s.comms[key] != comm {
		s.comms[key] = comm
		s.buf = s.buf[:0]
		s.buf = le.AppendUint32(s.buf, uint32(sm.PID))
		s.buf = le.AppendUint32(s.buf, uint32(sm.TID))
		s.appendString(comm)
		s.sampleID(sm.PID, sm.TID, t)
		if err := s.emit(recComm, 0, s.buf); err != nil {
			return err
		}
	}
	for _, f := range sm.Frames {
		m := f.Mapping
		if f.Kernel || m == nil || m.Limit <= m.Start {
			continue
		}
		k := mmapKey{sm.PID, m.Start, m.Limit - m.Start, m.File}
		if s.mmaps[k] {
			continue
		}
		s.mmaps[k] = true
		if err := s.addMmap2(sm.PID, m, t); err != nil {
			return err
		}
	}
	return nil
}

func (s *stream) addMmap2(pid int32, m *profile.Mapping, t uint64) error {
	s.buf = s.buf[:0]
	s.buf = le.AppendUint32(s.buf, uint32(pid))
	s.buf = le.AppendUint32(s.buf, uint32(pid))
	s.buf = le.AppendUint64(s.buf, m.Start)
	s.buf = le.AppendUint64(s.buf, m.Limit-m.Start)
	s.buf = le.AppendUint64(s.buf, m.Offset)
	misc := uint16(miscUser)
	if id := gnuBuildID(m.BuildID); id != nil {
		misc |= miscMmapBuildID
		s.buf = append(s.buf, byte(len(id)), 0, 0, 0)
		s.buf = append(s.buf, id...)
		s.buf = append(s.buf, make([]byte, 20-len(id))...)
		s.buildIDs[m.File] = buildIDEntry{id: id}
	} else {
		s.buf = append(s.buf, make([]byte, 24)...) // maj, min, ino, ino_generation unknown
	}
	s.buf = le.AppendUint32(s.buf, 5)    // PROT_READ|PROT_EXEC
	s.buf = le.AppendUint32(s.buf, 0x02) // MAP_PRIVATE
	s.appendString(m.File)
	s.sampleID(pid, pid, t)
	return s.emit(recMmap2, misc, s.buf)
}

// gnuBuildID decodes a hex GNU build ID of at most 20 bytes; Go build IDs and
// unknown ones give nil.
func gnuBuildID(h string) []byte {
	if h == "" || len(h) > 40 {
		return nil
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil
	}
	return b
}

// ips collapses consecutive frames of the same address (inlined Go frames)
// into one frame per IP.
func ips(frames []profile.Frame) (out []profile.Frame) {
	for group := range profile.InlineGroups(frames) {
		out = append(out, group[0])
	}
	return out
}

func (s *stream) addSample(sm *profile.Sample, t uint64) error {
	fr := ips(sm.Frames)
	if len(fr) == 0 || sm.Count == 0 {
		return nil
	}
	s.buf = s.buf[:0]
	s.buf = le.AppendUint64(s.buf, fr[0].Address)
	s.buf = le.AppendUint32(s.buf, uint32(sm.PID))
	s.buf = le.AppendUint32(s.buf, uint32(sm.TID))
	s.buf = le.AppendUint64(s.buf, t)
	s.buf = le.AppendUint64(s.buf, 0) // cpu 0, res
	s.buf = le.AppendUint64(s.buf, s.period*sm.Count)
	var chain []uint64
	ctx := uint64(0)
	for _, f := range fr {
		want := uint64(contextUser)
		if f.Kernel {
			want = contextKernel
		}
		if want != ctx {
			chain = append(chain, want)
			ctx = want
		}
		chain = append(chain, f.Address)
	}
	// A record's size is a u16: keep the frames nearest the leaf.
	if n := (maxRecord - 8 - len(s.buf) - 8) / 8; len(chain) > n {
		chain = chain[:n]
	}
	s.buf = le.AppendUint64(s.buf, uint64(len(chain)))
	for _, a := range chain {
		s.buf = le.AppendUint64(s.buf, a)
	}
	misc := uint16(miscUser)
	if fr[0].Kernel {
		misc = miscKernel
	}
	return s.emit(recSample, misc, s.buf)
}

// finish writes ids, attrs and features, then the header, and renames the
// temp file to its path.
func (s *stream) finish() error {
	err := s.writeTrailer()
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(s.tmp, s.path)
	}
	if err != nil {
		os.Remove(s.tmp)
		return fmt.Errorf("perfdata: finish %s: %w", s.path, err)
	}
	return nil
}

func (s *stream) writeTrailer() error {
	// perf reads the feature section table right after the data section,
	// so it comes first; the feature bodies, ids and attrs follow.
	off := uint64(s.size())
	feats := s.features()
	bodyOff := off + uint64(16*len(feats))
	var b, body []byte
	for _, ft := range feats {
		b = le.AppendUint64(b, bodyOff+uint64(len(body)))
		b = le.AppendUint64(b, uint64(len(ft.data)))
		body = append(body, ft.data...)
	}
	b = append(b, body...)
	idsOff := off + uint64(len(b))
	b = le.AppendUint64(b, 1) // the one attr's id
	attrsOff := off + uint64(len(b))
	b = append(b, s.attr...)
	b = le.AppendUint64(b, idsOff)
	b = le.AppendUint64(b, 8)
	attrsSize := uint64(attrSize + 16)
	if _, err := s.bw.Write(b); err != nil {
		return err
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}

	h := make([]byte, 0, headerSize)
	h = append(h, magic...)
	h = le.AppendUint64(h, headerSize)
	h = le.AppendUint64(h, attrSize+16)
	h = le.AppendUint64(h, attrsOff)
	h = le.AppendUint64(h, attrsSize)
	h = le.AppendUint64(h, headerSize)
	h = le.AppendUint64(h, uint64(s.dataSize))
	h = le.AppendUint64(h, 0) // event_types: none
	h = le.AppendUint64(h, 0)
	var bits [4]uint64
	for _, ft := range feats {
		bits[ft.bit/64] |= 1 << (ft.bit % 64)
	}
	for _, w := range bits {
		h = le.AppendUint64(h, w)
	}
	_, err := s.f.WriteAt(h, 0)
	return err
}

type feature struct {
	bit  int
	data []byte
}

// features returns the feature sections in bit order.
func (s *stream) features() []feature {
	host, _ := os.Hostname()
	rel, arch := uname()
	ncpu := uint32(runtime.NumCPU())
	var nr []byte
	nr = le.AppendUint32(nr, ncpu)
	nr = le.AppendUint32(nr, ncpu)

	var ed []byte
	ed = le.AppendUint32(ed, 1)
	ed = le.AppendUint32(ed, attrSize)
	ed = append(ed, s.attr...)
	ed = le.AppendUint32(ed, 1)
	ed = appendHeaderString(ed, s.evName)
	ed = le.AppendUint64(ed, 1)

	return []feature{
		{featBuildID, s.buildIDSection()},
		{featHostname, appendHeaderString(nil, host)},
		{featOSRelease, appendHeaderString(nil, rel)},
		{featArch, appendHeaderString(nil, arch)},
		{featNrCPUs, nr},
		{featEventDesc, ed},
	}
}

func (s *stream) buildIDSection() []byte {
	files := make([]string, 0, len(s.buildIDs))
	for f := range s.buildIDs {
		files = append(files, f)
	}
	sort.Strings(files)
	var b []byte
	for _, f := range files {
		e := s.buildIDs[f]
		n := align(len(f)+1, nameAlign)
		misc := uint16(miscUser | miscBuildIDSize)
		if e.kernel {
			misc = miscKernel | miscBuildIDSize
		}
		b = le.AppendUint32(b, 0) // PERF_RECORD_HEADER_BUILD_ID is implied by the section
		b = le.AppendUint16(b, misc)
		b = le.AppendUint16(b, uint16(8+4+24+n))
		b = le.AppendUint32(b, ^uint32(0)) // pid: host
		id := make([]byte, 24)
		copy(id, e.id)
		id[20] = byte(len(e.id))
		b = append(b, id...)
		b = append(b, f...)
		b = append(b, make([]byte, n-len(f))...)
	}
	return b
}

// appendHeaderString appends a perf_header_string: u32 length (padded to 64)
// then the NUL-padded string.
func appendHeaderString(b []byte, str string) []byte {
	n := align(len(str)+1, nameAlign)
	b = le.AppendUint32(b, uint32(n))
	b = append(b, str...)
	return append(b, make([]byte, n-len(str))...)
}
