package perfdata

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/consumer/perfdata/perfdatatest"
	"github.com/kprof/kprof/internal/agent/profile"
)

// fuzzEvent builds an event from fuzz bytes: up to 64 samples, each with a
// pid, tid, count and up to 40 frames, user frames in one of four mappings
// (with and without build IDs, odd file names).
func fuzzEvent(data []byte, comm string) *profile.Event {
	maps := []*profile.Mapping{
		{Start: 0x400000, Limit: 0x500000, File: "/app/server", BuildID: "go-build-id/not-hex"},
		{Start: 0x7f0000000000, Limit: 0x7f0000100000, Offset: 0x1000, File: "/usr/lib/libc.so.6", BuildID: "0123456789abcdef0123456789abcdef01234567"},
		{Start: 0x10000, Limit: 0x10000, File: "empty"}, // Limit == Start: no mmap2
		{Start: 0x20000, Limit: 0x30000, File: comm, BuildID: "zz"},
	}
	next := func(n int) uint64 {
		if len(data) < n {
			data = nil
			return 0
		}
		var b [8]byte
		copy(b[:], data[:n])
		data = data[n:]
		return binary.LittleEndian.Uint64(b[:])
	}
	start := time.Unix(1_700_000_000, int64(next(4)))
	ev := &profile.Event{EventName: "cpu-clock", Period: 1 + next(3), Start: start, End: start.Add(time.Duration(next(4)))}
	for len(data) > 0 && len(ev.Samples) < 64 {
		s := profile.Sample{PID: int32(next(2)), TID: int32(next(2)), Count: next(2), Labels: map[string]string{"comm": comm}}
		n := int(next(1) % 40)
		for range n {
			sel := next(1)
			addr := next(8)
			f := profile.Frame{Address: addr}
			switch {
			case sel%5 == 4:
				f.Kernel = true
			case sel%5 != 3:
				f.Mapping = maps[sel%5%4]
			}
			s.Frames = append(s.Frames, f)
		}
		ev.Samples = append(ev.Samples, s)
	}
	return ev
}

// FuzzWriteRead writes a fuzzed event and reads it back: every sample with
// frames and a count is one SAMPLE record with its pid, tid, period × count and
// the callchain of its distinct consecutive addresses (context markers where
// kernel and user frames alternate), and every thread has its comm.
func FuzzWriteRead(f *testing.F) {
	f.Add([]byte("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d"), "server")
	f.Add(make([]byte, 200), "")
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), "a very long command name indeed")
	f.Fuzz(func(t *testing.T, data []byte, comm string) {
		ev := fuzzEvent(data, comm)
		path := filepath.Join(t.TempDir(), "perf.data")
		if err := (Writer{Path: path}).Write(ev); err != nil {
			t.Fatalf("write: %v", err)
		}
		got, err := perfdatatest.Read(path)
		if err != nil {
			t.Fatalf("read back: %v", err)
		}
		var want []profile.Sample
		for _, s := range ev.Samples {
			if s.Count > 0 && len(s.Frames) > 0 {
				want = append(want, s)
			}
		}
		if len(got.Samples) != len(want) {
			t.Fatalf("%d SAMPLE records, want %d", len(got.Samples), len(want))
		}
		for i, s := range want {
			r := got.Samples[i]
			if r.PID != s.PID || r.TID != s.TID || r.Period != ev.Period*s.Count {
				t.Fatalf("sample %d: pid %d tid %d period %d, want %d %d %d", i, r.PID, r.TID, r.Period, s.PID, s.TID, ev.Period*s.Count)
			}
			var chain []uint64
			ctx := uint64(0)
			for j, fr := range s.Frames {
				if j > 0 && fr.Address == s.Frames[j-1].Address && fr.Kernel == s.Frames[j-1].Kernel {
					continue
				}
				mark := uint64(contextUser)
				if fr.Kernel {
					mark = contextKernel
				}
				if mark != ctx {
					chain = append(chain, mark)
					ctx = mark
				}
				chain = append(chain, fr.Address)
			}
			if len(r.Callchain) > len(chain) || len(r.Callchain) == 0 {
				t.Fatalf("sample %d: callchain of %d, want %d (or fewer when capped)", i, len(r.Callchain), len(chain))
			}
			for j := range r.Callchain {
				if r.Callchain[j] != chain[j] {
					t.Fatalf("sample %d: callchain[%d] = %#x, want %#x", i, j, r.Callchain[j], chain[j])
				}
			}
			if r.IP != s.Frames[0].Address {
				t.Fatalf("sample %d: ip %#x, want the leaf %#x", i, r.IP, s.Frames[0].Address)
			}
		}
		comms := map[[2]int32]string{}
		for _, c := range got.Comms {
			comms[[2]int32{c.PID, c.TID}] = c.Comm
		}
		for _, s := range ev.Samples {
			c, ok := comms[[2]int32{s.PID, s.TID}]
			if want := commOf(&s); !ok || c != want || c == "" {
				t.Fatalf("COMM of pid %d tid %d = %q (present %v), want %q", s.PID, s.TID, c, ok, want)
			}
		}
	})
}

// FuzzRead decodes arbitrary bytes, seeded with a real written file: the
// reader returns an error or a file, never panics or allocates beyond the input.
func FuzzRead(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.data")
	if err := (Writer{Path: path}).Write(syntheticEvent(time.Unix(1_700_000_000, 0))); err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = perfdatatest.Decode(b)
	})
}
