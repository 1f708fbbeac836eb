package otlp

import (
	"bytes"
	"math"
	"testing"

	"go.opentelemetry.io/collector/pdata/pprofile"
	"go.opentelemetry.io/collector/pdata/pprofile/pprofileotlp"

	"github.com/kprof/kprof/internal/agent/profile/profiletest"
)

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
		ev := profiletest.EventFromBytes(data)
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
