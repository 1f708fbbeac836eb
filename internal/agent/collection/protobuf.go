package collection

import (
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of the ProfileCollectionConfig message, and how a file names them.
const (
	fieldEventName       protowire.Number = 1 // string
	fieldSamplePeriod    protowire.Number = 2 // uint64, varint
	fieldIntervalSeconds protowire.Number = 3 // uint64, varint
)

var protoFieldNames = map[protowire.Number]string{
	fieldEventName:       "data.event_name",
	fieldSamplePeriod:    "data.sample_period",
	fieldIntervalSeconds: "data.interval_seconds",
}

var protoWireTypes = map[protowire.Number]protowire.Type{
	fieldEventName:       protowire.BytesType,
	fieldSamplePeriod:    protowire.VarintType,
	fieldIntervalSeconds: protowire.VarintType,
}

var wireTypeNames = map[protowire.Type]string{
	protowire.VarintType:     "varint",
	protowire.Fixed64Type:    "fixed64",
	protowire.BytesType:      "bytes",
	protowire.StartGroupType: "start-group",
	protowire.EndGroupType:   "end-group",
	protowire.Fixed32Type:    "fixed32",
}

func wireTypeName(t protowire.Type) string {
	if s, ok := wireTypeNames[t]; ok {
		return fmt.Sprintf("%s (%d)", s, t)
	}
	return fmt.Sprintf("unknown (%d)", t)
}

// protoConfig is a decoded ProfileCollectionConfig message.
type protoConfig struct {
	eventName       string
	samplePeriod    uint64
	intervalSeconds uint64
}

// decodeProfileCollectionConfig decodes a ProfileCollectionConfig by hand: known
// fields must have their wire type, unknown fields are skipped, a repeated
// scalar field keeps its last value (as proto does). The input is bounded by
// MaxFileSize through the file it came from.
func decodeProfileCollectionConfig(b []byte) (protoConfig, *FieldError) {
	var m protoConfig
	off := 0
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, fieldErr("data", "malformed protobuf tag at byte %d: %v", off, protowire.ParseError(n))
		}
		b, off = b[n:], off+n
		want, known := protoWireTypes[num]
		if known && typ != want {
			return m, fieldErr(protoFieldNames[num], "field %d has wire type %s, want %s", num, wireTypeName(typ), wireTypeName(want))
		}
		switch {
		case num == fieldEventName:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return m, fieldErr(protoFieldNames[num], "protobuf field %d at byte %d: %v", num, off, protowire.ParseError(n))
			}
			if !utf8.Valid(v) {
				return m, fieldErr(protoFieldNames[num], "field %d is not valid UTF-8", num)
			}
			m.eventName = string(v)
			b, off = b[n:], off+n
		case known: // a varint field
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return m, fieldErr(protoFieldNames[num], "protobuf field %d at byte %d: %v", num, off, protowire.ParseError(n))
			}
			if num == fieldSamplePeriod {
				m.samplePeriod = v
			} else {
				m.intervalSeconds = v
			}
			b, off = b[n:], off+n
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return m, fieldErr("data", "unknown field %d (wire type %s) at byte %d: %v", num, wireTypeName(typ), off, protowire.ParseError(n))
			}
			b, off = b[n:], off+n
		}
	}
	return m, nil
}

// secondsToInterval converts whole seconds to a Duration, saturating instead of
// overflowing so that a huge value is still rejected as too long.
func secondsToInterval(secs uint64) time.Duration {
	const maxSecs = math.MaxInt64 / int64(time.Second)
	if secs > uint64(maxSecs) {
		secs = uint64(maxSecs)
	}
	return time.Duration(secs) * time.Second
}
