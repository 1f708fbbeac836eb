package collection

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Type names accepted in the envelope form's type.type.
const (
	// TypeSeed is the message name the seed uses: the seed is the design
	// document kprof grew out of (docs/seed-mapping.md), whose agent config
	// files name the message in the antimetal.agent.v1 protobuf package.
	// Accepting it lets a file written for the seed run unchanged.
	TypeSeed = "antimetal.agent.v1.ProfileCollectionConfig"
	// TypeKprof is kprof's own name for the same message.
	TypeKprof = "kprof.agent.v1.ProfileCollectionConfig"
)

var acceptedTypes = []string{TypeSeed, TypeKprof}

var (
	envelopeNames = fieldNames{
		name: "name", version: "version",
		event:    protoFieldNames[fieldEventName],
		period:   protoFieldNames[fieldSamplePeriod],
		interval: protoFieldNames[fieldIntervalSeconds], intervalSeconds: true,
	}
	plainNames = fieldNames{
		name: "name", version: "version",
		event: "spec.event", period: "spec.samplePeriod", frequency: "spec.frequency",
		interval: "spec.intervalSeconds", intervalSeconds: true,
	}
)

// ParseFile parses and validates one config file. path names the file in errors
// and becomes the config's Source; data is its content (JSON is accepted as the
// YAML subset it is). Every error is a *FieldError (joined when there are
// several) naming path and the field.
func ParseFile(path string, data []byte) (CollectionConfig, error) {
	c, errs := parse(data)
	if len(errs) > 0 {
		return CollectionConfig{}, joinFieldErrors(errs, path)
	}
	c.Source = path
	return c, nil
}

func parse(data []byte) (CollectionConfig, []*FieldError) {
	if len(data) > MaxFileSize {
		return CollectionConfig{}, []*FieldError{fieldErr("", "file is larger than the %d-byte limit", MaxFileSize)}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return CollectionConfig{}, []*FieldError{fieldErr("", "file is empty")}
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return CollectionConfig{}, []*FieldError{fieldErr("", "not valid YAML: %v", err)}
	}
	if isNull(js) {
		return CollectionConfig{}, []*FieldError{fieldErr("", "file is empty")}
	}
	top, ferr := object(js, "")
	if ferr != nil {
		return CollectionConfig{}, []*FieldError{ferr}
	}
	_, hasType := top["type"]
	_, hasSpec := top["spec"]
	switch {
	case hasType && hasSpec:
		return CollectionConfig{}, []*FieldError{fieldErr("spec", "a file has either type and data (the protobuf form) or spec (the plain form), not both")}
	case hasType:
		return parseEnvelope(top)
	case hasSpec:
		return parsePlain(top)
	default:
		if ferr := checkKeys(top, "", "name", "version", "type", "data", "spec"); ferr != nil {
			return CollectionConfig{}, []*FieldError{ferr}
		}
		return CollectionConfig{}, []*FieldError{fieldErr("spec", "required: a file has either spec (the plain form) or type and data (the protobuf form)")}
	}
}

// parseEnvelope reads the seed's form: type.type names the message, data holds it
// as base64 protobuf.
func parseEnvelope(top map[string]json.RawMessage) (CollectionConfig, []*FieldError) {
	var errs []*FieldError
	if ferr := checkKeys(top, "", "type", "name", "version", "data"); ferr != nil {
		return CollectionConfig{}, []*FieldError{ferr}
	}
	var c CollectionConfig
	typ, ferr := object(top["type"], "type")
	if ferr == nil {
		ferr = checkKeys(typ, "type", "type")
	}
	if ferr != nil {
		errs = append(errs, ferr)
	} else if name, ferr := stringField(typ["type"], "type.type"); ferr != nil {
		errs = append(errs, ferr)
	} else if !slices.Contains(acceptedTypes, name) {
		errs = append(errs, fieldErr("type.type", "unknown type %q (want one of %s)", name, strings.Join(acceptedTypes, ", ")))
	}
	errs = appendHeader(&c, top, errs)

	var msg []byte
	switch raw, ok := top["data"]; {
	case !ok || isNull(raw):
		errs = append(errs, fieldErr("data", "required: the base64 ProfileCollectionConfig message"))
	default:
		s, ferr := stringField(raw, "data")
		if ferr != nil {
			errs = append(errs, ferr)
			break
		}
		if msg, ferr = decodeBase64(s); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	if len(errs) > 0 {
		return CollectionConfig{}, errs
	}
	m, ferr := decodeProfileCollectionConfig(msg)
	if ferr != nil {
		return CollectionConfig{}, []*FieldError{ferr}
	}
	c.Event = m.eventName
	c.SamplePeriod = m.samplePeriod
	c.Interval = secondsToInterval(m.intervalSeconds)
	if errs := c.validate(envelopeNames); len(errs) > 0 {
		return CollectionConfig{}, errs
	}
	return c, nil
}

// parsePlain reads the form for people: the message's fields under spec.
func parsePlain(top map[string]json.RawMessage) (CollectionConfig, []*FieldError) {
	var errs []*FieldError
	if ferr := checkKeys(top, "", "name", "version", "spec"); ferr != nil {
		return CollectionConfig{}, []*FieldError{ferr}
	}
	var c CollectionConfig
	errs = appendHeader(&c, top, errs)
	spec, ferr := object(top["spec"], "spec")
	if ferr == nil {
		ferr = checkKeys(spec, "spec", "event", "samplePeriod", "frequency", "intervalSeconds")
	}
	if ferr != nil {
		return CollectionConfig{}, append(errs, ferr)
	}
	if raw := spec["event"]; !isNull(raw) {
		var ferr *FieldError
		if c.Event, ferr = stringField(raw, "spec.event"); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	var secs uint64
	for _, f := range []struct {
		key string
		dst *uint64
	}{{"samplePeriod", &c.SamplePeriod}, {"frequency", &c.Frequency}, {"intervalSeconds", &secs}} {
		v, ferr := uintField(spec[f.key], "spec."+f.key) // absent: 0
		if ferr != nil {
			errs = append(errs, ferr)
		}
		*f.dst = v
	}
	if len(errs) > 0 {
		return CollectionConfig{}, errs
	}
	c.Interval = secondsToInterval(secs)
	if errs := c.validate(plainNames); len(errs) > 0 {
		return CollectionConfig{}, errs
	}
	return c, nil
}

// appendHeader reads name and version, which both forms share.
func appendHeader(c *CollectionConfig, top map[string]json.RawMessage, errs []*FieldError) []*FieldError {
	if raw, ok := top["name"]; ok {
		var ferr *FieldError
		if c.Name, ferr = stringField(raw, "name"); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	if raw, ok := top["version"]; ok {
		var ferr *FieldError
		if c.Version, ferr = versionField(raw); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	return errs
}

// versionField accepts an integer or, as the seed writes it (protobuf JSON
// encodes 64-bit integers as strings), a string of digits, optionally "v"-prefixed.
func versionField(raw json.RawMessage) (int64, *FieldError) {
	if isNull(raw) {
		return 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		v, err := strconv.ParseInt(strings.TrimPrefix(s, "v"), 10, 64)
		if err != nil {
			return 0, fieldErr("version", "%q is not an integer", s)
		}
		return v, nil
	}
	var v int64
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, fieldErr("version", "must be an integer, got %s", describe(raw))
	}
	return v, nil
}

// decodeBase64 accepts standard or URL-safe base64, padded or not (as protobuf
// JSON does for bytes).
func decodeBase64(s string) ([]byte, *FieldError) {
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if !strings.HasSuffix(s, "=") && len(strings.Join(strings.Fields(s), ""))%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, fieldErr("data", "not valid base64: %v", err)
	}
	return b, nil
}

func object(raw json.RawMessage, field string) (map[string]json.RawMessage, *FieldError) {
	var m map[string]json.RawMessage
	if isNull(raw) || json.Unmarshal(raw, &m) != nil {
		where := field
		if where == "" {
			return nil, fieldErr("", "must be a mapping (name, version and spec, or type and data), got %s", describe(raw))
		}
		return nil, fieldErr(where, "must be a mapping, got %s", describe(raw))
	}
	return m, nil
}

// checkKeys rejects the first (in sorted order) key of m that is not allowed.
func checkKeys(m map[string]json.RawMessage, path string, allowed ...string) *FieldError {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(allowed, k) {
			want := slices.Clone(allowed)
			slices.Sort(want)
			return fieldErr(join(path, k), "unknown field (want one of %s)", strings.Join(want, ", "))
		}
	}
	return nil
}

func stringField(raw json.RawMessage, field string) (string, *FieldError) {
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		return "", fieldErr(field, "must be a string, got %s", describe(raw))
	}
	return s, nil
}

func uintField(raw json.RawMessage, field string) (uint64, *FieldError) {
	if isNull(raw) {
		return 0, nil
	}
	var v uint64
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, fieldErr(field, "must be a non-negative integer, got %s", describe(raw))
	}
	return v, nil
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// describe names a JSON value for an error without echoing a long one.
func describe(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "nothing"
	}
	var kind string
	switch raw[0] {
	case '{':
		return "a mapping"
	case '[':
		return "a list"
	case '"':
		kind = "string "
	case 't', 'f':
		kind = "boolean "
	default:
		kind = "number "
	}
	if len(raw) > 40 {
		return kind + string(raw[:37]) + "..."
	}
	return kind + string(raw)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
