package otlp

import (
	"bytes"
	"math"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pprofile"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"

	"github.com/kprof/kprof/internal/agent/profile"
)

// byteReader hands out fuzz bytes; past the end it returns zeros.
type byteReader struct{ b []byte }

func (r *byteReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *byteReader) uint64() uint64 {
	var v uint64
	for range 8 {
		v = v<<8 | uint64(r.byte())
	}
	return v
}

func (r *byteReader) string() string {
	n := min(int(r.byte()%8), len(r.b))
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

var fuzzLabelKeys = []string{"pid", "comm", "exe", "container_id", "pod", "namespace", "container", "pod_uid", "tid", "other", ""}

// fuzzEvent builds an event from data. Addresses, labels and mappings come
// from small pools so that locations, inline groups, resources and samples
// repeat and collide.
func fuzzEvent(data []byte) *profile.Event {
	r := &byteReader{b: data}
	names := []string{"", "cpu-clock", "task-clock", "page-faults"}
	ev := &profile.Event{
		Config:    r.string(),
		Version:   int64(r.uint64()),
		EventName: names[r.byte()%4],
		Period:    r.uint64(),
		Frequency: uint64(r.byte()),
		Start:     time.Unix(0, int64(r.uint64()>>1)),
		End:       time.Unix(0, int64(r.uint64()>>1)),
		Labels:    map[string]string{"node": r.string(), "cluster": r.string(), r.string(): r.string()},
	}
	mappings := make([]*profile.Mapping, 1+r.byte()%4)
	for i := range mappings {
		mappings[i] = &profile.Mapping{Start: r.uint64(), Limit: r.uint64(), Offset: r.uint64(), File: r.string(), BuildID: r.string()}
	}
	for range r.byte() % 16 {
		s := profile.Sample{PID: int32(r.byte() % 4), TID: int32(r.byte() % 4), Count: r.uint64(), CPUTime: time.Duration(r.uint64())}
		for range r.byte() % 4 {
			if s.Labels == nil {
				s.Labels = map[string]string{}
			}
			s.Labels[fuzzLabelKeys[int(r.byte())%len(fuzzLabelKeys)]] = r.string()
		}
		for range r.byte() % 32 {
			c := r.byte()
			f := profile.Frame{Address: uint64(r.byte() % 8), Kernel: c&1 != 0, Line: int(int8(r.byte()))}
			if c&2 != 0 {
				f.Function = r.string()
			}
			if c&4 != 0 {
				f.File = r.string()
			}
			if c&8 != 0 && !f.Kernel {
				f.Mapping = mappings[int(c>>4)%len(mappings)]
			}
			s.Frames = append(s.Frames, f)
		}
		ev.Samples = append(ev.Samples, s)
	}
	return ev
}

func FuzzProfilesConvert(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("kprof"))
	f.Add(make([]byte, 256))
	seed := make([]byte, 1024)
	for i := range seed {
		seed[i] = byte(i * 37)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		ev := fuzzEvent(data)
		pd, err := Convert(ev)
		if err != nil {
			t.Fatalf("Convert: %v", err)
		}
		checkIndexes(t, pd)
		if n := pd.SampleCount(); n > 2*len(ev.Samples) {
			t.Fatalf("%d OTLP samples for %d event samples", n, len(ev.Samples))
		}
		// The sample counts survive unless the sum overflows (then they saturate).
		var want uint64
		overflow := false
		for _, s := range ev.Samples {
			if s.Count > math.MaxInt64 || want+s.Count > math.MaxInt64 {
				overflow = true
			}
			want += s.Count
		}
		if got := totals(pd)["samples/count"]; !overflow && got != int64(want) {
			t.Fatalf("samples/count %d, want %d", got, want)
		}

		wire, err := (&pprofile.ProtoMarshaler{}).MarshalProfiles(pd)
		if err != nil {
			t.Fatalf("MarshalProfiles: %v", err)
		}
		back, err := (&pprofile.ProtoUnmarshaler{}).UnmarshalProfiles(wire)
		if err != nil {
			t.Fatalf("UnmarshalProfiles: %v", err)
		}
		again, err := (&pprofile.ProtoMarshaler{}).MarshalProfiles(back)
		if err != nil {
			t.Fatalf("MarshalProfiles after a round trip: %v", err)
		}
		if !bytes.Equal(wire, again) {
			t.Fatalf("proto round trip changed the profiles: %d bytes then %d", len(wire), len(again))
		}
		if back.SampleCount() != pd.SampleCount() || back.ResourceProfiles().Len() != pd.ResourceProfiles().Len() {
			t.Fatalf("round trip: %d samples in %d resources, want %d in %d", back.SampleCount(), back.ResourceProfiles().Len(), pd.SampleCount(), pd.ResourceProfiles().Len())
		}

		js, err := (&pprofile.JSONMarshaler{}).MarshalProfiles(pd)
		if err != nil {
			t.Fatalf("MarshalProfiles JSON: %v", err)
		}
		fromJSON, err := (&pprofile.JSONUnmarshaler{}).UnmarshalProfiles(js)
		if err != nil {
			t.Fatalf("UnmarshalProfiles JSON: %v", err)
		}
		if fromJSON.SampleCount() != pd.SampleCount() {
			t.Fatalf("JSON round trip: %d samples, want %d", fromJSON.SampleCount(), pd.SampleCount())
		}

		// What the gRPC client sends: the export request's encoding.
		req := pprofileotlp.NewExportRequestFromProfiles(pd)
		body, err := req.MarshalProto()
		if err != nil {
			t.Fatalf("ExportRequest.MarshalProto: %v", err)
		}
		got := pprofileotlp.NewExportRequest()
		if err := got.UnmarshalProto(body); err != nil {
			t.Fatalf("ExportRequest.UnmarshalProto: %v", err)
		}
		if got.Profiles().SampleCount() != pd.SampleCount() {
			t.Fatalf("export request round trip: %d samples, want %d", got.Profiles().SampleCount(), pd.SampleCount())
		}
	})
}

// checkIndexes fails t when an index of pd points outside its table or a
// zero entry is not zero.
func checkIndexes(t *testing.T, pd pprofile.Profiles) {
	t.Helper()
	d := pd.Dictionary()
	in := func(what string, i int32, n int) {
		if i < 0 || int(i) >= n {
			t.Fatalf("%s index %d outside its table of %d", what, i, n)
		}
	}
	nStr, nAttr := d.StringTable().Len(), d.AttributeTable().Len()
	if nStr == 0 || d.StringTable().At(0) != "" {
		t.Fatal("string_table[0] is not \"\"")
	}
	for i := range d.AttributeTable().Len() {
		in("attribute key", d.AttributeTable().At(i).KeyStrindex(), nStr)
	}
	for i := range d.FunctionTable().Len() {
		fn := d.FunctionTable().At(i)
		in("function name", fn.NameStrindex(), nStr)
		in("function file", fn.FilenameStrindex(), nStr)
	}
	for i := range d.MappingTable().Len() {
		m := d.MappingTable().At(i)
		in("mapping file", m.FilenameStrindex(), nStr)
		for j := range m.AttributeIndices().Len() {
			in("mapping attribute", m.AttributeIndices().At(j), nAttr)
		}
	}
	for i := range d.LocationTable().Len() {
		loc := d.LocationTable().At(i)
		in("location mapping", loc.MappingIndex(), d.MappingTable().Len())
		for j := range loc.Lines().Len() {
			in("line function", loc.Lines().At(j).FunctionIndex(), d.FunctionTable().Len())
		}
	}
	for i := range d.StackTable().Len() {
		st := d.StackTable().At(i)
		for j := range st.LocationIndices().Len() {
			in("stack location", st.LocationIndices().At(j), d.LocationTable().Len())
		}
	}
	eachProfile(pd, func(_ pprofile.ResourceProfiles, p pprofile.Profile) {
		in("sample type", p.SampleType().TypeStrindex(), nStr)
		for i := range p.Samples().Len() {
			s := p.Samples().At(i)
			in("sample stack", s.StackIndex(), d.StackTable().Len())
			if s.Values().Len() != 1 {
				t.Fatalf("sample with %d values, want 1", s.Values().Len())
			}
			for j := range s.AttributeIndices().Len() {
				in("sample attribute", s.AttributeIndices().At(j), nAttr)
			}
		}
	})
}
