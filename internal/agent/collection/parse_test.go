package collection

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) (string, []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, data
}

func TestParseFileAcceptsGoodFiles(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       CollectionConfig
	}{
		{"the seed's file as written decodes what its bytes say", "good-seed.yaml", CollectionConfig{
			Name: "cpu-profile", Version: 1, Event: "cpu-clock", SamplePeriod: 1281018368, Interval: 10 * time.Second}},
		{"the seed's quoted version and trailing comment are accepted", "good-seed-string-version.yaml", CollectionConfig{
			Name: "test-profiler", Version: 1, Event: "cpu-clock", SamplePeriod: 1281018368, Interval: 10 * time.Second}},
		{"kprof's message name is accepted and unknown protobuf fields are skipped", "good-kprof-type.yaml", CollectionConfig{
			Name: "task-profile", Version: 7, Event: "task-clock", SamplePeriod: 1000000, Interval: time.Minute}},
		{"the seed's JSON form is accepted", "good-seed.json", CollectionConfig{
			Name: "json-profile", Version: 3, Event: "page-faults", SamplePeriod: 1, Interval: time.Hour}},
		{"the plain form with a sample period is accepted", "good-plain.yaml", CollectionConfig{
			Name: "cpu-profile", Version: 2, Event: "cpu-clock", SamplePeriod: 10000000, Interval: 10 * time.Second}},
		{"the plain form with a frequency and no version is accepted", "good-plain-frequency.yaml", CollectionConfig{
			Name: "ctx-switches", Event: "context-switches", Frequency: 99, Interval: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, data := readTestdata(t, tc.file)
			got, err := ParseFile(path, data)
			if err != nil {
				t.Fatalf("ParseFile: %v", err)
			}
			tc.want.Source = path
			if got != tc.want {
				t.Errorf("ParseFile(%s)\n got %+v\nwant %+v", tc.file, got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("a parsed config does not validate: %v", err)
			}
		})
	}
}

func TestTheSeedFileIsTheSeedsShape(t *testing.T) {
	_, data := readTestdata(t, "good-seed.yaml")
	want := "type:\n  type: antimetal.agent.v1.ProfileCollectionConfig\nname: cpu-profile\nversion: 1\ndata: CgljcHUtY2xvY2sQgJTr4gQYCg=="
	if string(data) != want {
		t.Fatalf("testdata/good-seed.yaml is not the seed's file byte for byte:\n%q", data)
	}
}

func TestParseFileRejectsBadFilesNamingFileAndField(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		field      string   // the first FieldError's field
		want       []string // in the message
	}{
		{"base64 garbage is named as data", "bad-base64.yaml", "data", []string{"not valid base64"}},
		{"a truncated string field names its field", "bad-truncated.yaml", "data.event_name", []string{"protobuf field 1", "unexpected EOF"}},
		{"a truncated varint names its field", "bad-truncated-varint.yaml", "data.sample_period", []string{"protobuf field 2", "unexpected EOF"}},
		{"a wrong wire type names the field number", "bad-wire-type.yaml", "data.sample_period", []string{"field 2 has wire type bytes (2), want varint (0)"}},
		{"an unknown event in the plain form is named", "bad-unknown-event.yaml", "spec.event", []string{`unknown event "cpu-clocks"`, "cpu-clock, task-clock"}},
		{"an unknown event in the protobuf is named", "bad-unknown-event-protobuf.yaml", "data.event_name", []string{`unknown event "cycles"`}},
		{"a missing protobuf interval is an interval of 0", "bad-interval-zero.yaml", "data.interval_seconds", []string{"must be from 1 to 3600 seconds, got 0"}},
		{"an interval of 0 is rejected", "bad-interval-zero-plain.yaml", "spec.intervalSeconds", []string{"got 0"}},
		{"an interval over an hour is rejected", "bad-interval-too-long.yaml", "spec.intervalSeconds", []string{"got 3601"}},
		{"an unknown plain field is named with its path", "bad-unknown-field.yaml", "spec.samplePeriode", []string{"unknown field (want one of event, frequency, intervalSeconds, samplePeriod)"}},
		{"an unknown top-level field is named", "bad-unknown-top-field.yaml", "kind", []string{"unknown field (want one of data, name, type, version)"}},
		{"another message type is named", "bad-unknown-type.yaml", "type.type", []string{`unknown type "antimetal.agent.v1.HostStatsCollectionConfig"`}},
		{"a period and a frequency together are rejected", "bad-period-and-frequency.yaml", "spec.frequency", []string{"not both"}},
		{"neither a period nor a frequency is rejected", "bad-no-period.yaml", "spec.samplePeriod", []string{"spec.frequency must be greater than 0"}},
		{"a name that is not a DNS label is rejected", "bad-name.yaml", "name", []string{`"CPU_Profile" must be a DNS-1123 label`}},
		{"a version that is not a number is rejected", "bad-version.yaml", "version", []string{`"one" is not an integer`}},
		{"a value of the wrong type is named", "bad-wrong-type.yaml", "spec.samplePeriod", []string{`must be a non-negative integer, got string "ten million"`}},
		{"a duplicate key is rejected", "bad-duplicate-key.yaml", "", []string{`key "name" already set`}},
		{"both forms at once are rejected", "bad-both-forms.yaml", "spec", []string{"not both"}},
		{"the envelope form needs data", "bad-no-data.yaml", "data", []string{"required"}},
		{"a file of comments is empty", "bad-empty.yaml", "", []string{"file is empty"}},
		{"a list is not a config", "bad-not-a-mapping.yaml", "", []string{"must be a mapping", "got a list"}},
		{"every bad field is reported, not only the first", "bad-every-field.yaml", "name", []string{
			"name: \"-x-\"", "version: must not be negative", "spec.event:", "spec.samplePeriod:", "spec.intervalSeconds:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, data := readTestdata(t, tc.file)
			_, err := ParseFile(path, data)
			if err == nil {
				t.Fatalf("ParseFile(%s) succeeded, want an error", tc.file)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *FieldError", err, err)
			}
			if fe.File != path || fe.Field != tc.field {
				t.Errorf("FieldError names file %q field %q, want %q and %q", fe.File, fe.Field, path, tc.field)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, path+": ") {
				t.Errorf("error %q does not start with the file", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestParseFileRejectsAFileOverTheSizeLimit(t *testing.T) {
	// A valid file padded with a comment past the limit: rejected for its size alone.
	_, seed := readTestdata(t, "good-seed.yaml")
	data := append(bytes.Clone(seed), "\n# "...)
	data = append(data, bytes.Repeat([]byte("x"), MaxFileSize)...)
	_, err := ParseFile("huge.yaml", data)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.File != "huge.yaml" || !strings.Contains(err.Error(), "larger than the 1048576-byte limit") {
		t.Fatalf("ParseFile(huge) = %v, want a size error naming the file", err)
	}
	if _, err := ParseFile("limit.yaml", data[:MaxFileSize]); err != nil {
		t.Fatalf("a file of exactly MaxFileSize bytes is rejected: %v", err)
	}
}

func TestParseFileAcceptsUnpaddedAndURLSafeBase64(t *testing.T) {
	// 0a 0c "instructions" 10 fb 01 18 01: period 251 encodes with a '+' (standard) or '-' (URL-safe).
	for _, tc := range []struct{ name, data string }{
		{"standard, padded", "CgxpbnN0cnVjdGlvbnMQ+wEYAQ=="},
		{"standard, unpadded", "CgxpbnN0cnVjdGlvbnMQ+wEYAQ"},
		{"URL-safe, padded", "CgxpbnN0cnVjdGlvbnMQ-wEYAQ=="},
		{"URL-safe, unpadded", "CgxpbnN0cnVjdGlvbnMQ-wEYAQ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := "type: {type: kprof.agent.v1.ProfileCollectionConfig}\nname: ins\ndata: " + tc.data + "\n"
			c, err := ParseFile("ins.yaml", []byte(file))
			if err != nil {
				t.Fatal(err)
			}
			if c.Event != "instructions" || c.SamplePeriod != 251 || c.Interval != time.Second {
				t.Errorf("got %+v, want instructions, period 251, interval 1s", c)
			}
		})
	}
}

func TestDecodeProfileCollectionConfigRejectsMalformedInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    []byte
		field string
		want  string
	}{
		{"field number 0 is malformed", []byte{0x00, 0x01}, "data", "malformed protobuf tag at byte 0"},
		{"a truncated tag is malformed", []byte{0x80}, "data", "malformed protobuf tag"},
		{"an event name as a varint names field 1", []byte{0x08, 0x01}, "data.event_name", "field 1 has wire type varint (0), want bytes (2)"},
		{"an interval as fixed32 names field 3", []byte{0x1d, 1, 2, 3, 4}, "data.interval_seconds", "field 3 has wire type fixed32 (5), want varint (0)"},
		{"a truncated unknown field is rejected", []byte{0x22, 0x05, 'a'}, "data", "unknown field 4"},
		{"an event name that is not UTF-8 is rejected", []byte{0x0a, 0x01, 0xff}, "data.event_name", "not valid UTF-8"},
		{"an over-long varint is rejected", append([]byte{0x10}, bytes.Repeat([]byte{0xff}, 11)...), "data.sample_period", "protobuf field 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, fe := decodeProfileCollectionConfig(tc.in)
			if fe == nil {
				t.Fatal("decoded, want an error")
			}
			if fe.Field != tc.field || !strings.Contains(fe.Error(), tc.want) {
				t.Errorf("error %q on field %q, want field %q and %q", fe.Error(), fe.Field, tc.field, tc.want)
			}
		})
	}
}

func TestCollectionConfigValidateNamesGoFields(t *testing.T) {
	good := CollectionConfig{Name: "cpu", Event: "cpu-clock", SamplePeriod: 1, Interval: time.Second}
	for _, tc := range []struct {
		name   string
		modify func(*CollectionConfig)
		want   string // "" for valid
	}{
		{"a minimal config is valid", func(*CollectionConfig) {}, ""},
		{"a 63-character name is valid", func(c *CollectionConfig) { c.Name = strings.Repeat("a", 63) }, ""},
		{"a 64-character name is rejected", func(c *CollectionConfig) { c.Name = strings.Repeat("a", 64) }, "Name: "},
		{"a name ending in a dash is rejected", func(c *CollectionConfig) { c.Name = "cpu-" }, "Name: "},
		{"an empty name is rejected", func(c *CollectionConfig) { c.Name = "" }, "Name: required"},
		{"a negative version is rejected", func(c *CollectionConfig) { c.Version = -1 }, "Version: "},
		{"an interval under a second is rejected", func(c *CollectionConfig) { c.Interval = 999 * time.Millisecond }, "Interval: must be from 1s to 1h0m0s, got 999ms"},
		{"an interval of an hour is valid", func(c *CollectionConfig) { c.Interval = time.Hour }, ""},
		{"both period and frequency are rejected", func(c *CollectionConfig) { c.Frequency = 99 }, "Frequency: set SamplePeriod or Frequency, not both"},
		{"an empty event is rejected", func(c *CollectionConfig) { c.Event = "" }, "Event: required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.modify(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
