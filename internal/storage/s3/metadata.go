package s3

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/kprof/kprof/internal/storage"
)

// Object metadata limits. S3 allows 2 KiB of user metadata, counted as the bytes of
// every key and value; MinIO counts the header names ("x-amz-meta-" + key) too. Sizes
// here are counted the stricter way, and metadataBudget leaves room below 2 KiB.
const (
	metaHeaderPrefix  = "x-amz-meta-"
	metadataBudget    = 2000
	maxMetaValueLen   = 256
	maxLabelKeyLen    = 64
	labelKeyPrefix    = "label-"
	metaSHA256        = "sha256"
	metaLabelsLeftOut = "labels-omitted"
)

// metaField is one fixed metadata entry.
type metaField struct{ key, value string }

// userMetadata turns meta into S3 user metadata (sent as x-amz-meta-<key>). Keys are
// lower case; values are printable ASCII: other bytes, '%', and leading or trailing
// spaces are percent-encoded (url.PathUnescape restores them); long values are cut
// at 256 bytes. The fixed fields come first, in order of importance, then up to
// maxLabels labels in key order as "label-<key>", with the key mapped to [a-z0-9-].
// Whatever would take the total past metadataBudget is left out, labels first; the
// number of labels left out is stored as "labels-omitted". It never fails.
func userMetadata(meta storage.Meta, sha256Hex string, maxLabels int) map[string]string {
	fields := []metaField{
		{metaSHA256, sha256Hex},
		{storage.MetaType, meta.Type},
		{storage.MetaCapturedAt, meta.CapturedAtString()},
		{storage.MetaNamespace, meta.Namespace},
		{storage.MetaPod, meta.Pod},
		{storage.MetaService, meta.Service},
		{storage.MetaContainer, meta.Container},
		{storage.MetaNode, meta.Node},
		{storage.MetaConfig, meta.Config},
		{storage.MetaTarget, meta.Target},
		{storage.MetaReason, meta.Reason},
		{storage.MetaDuration, meta.DurationString()},
	}

	out := make(map[string]string, len(fields)+min(len(meta.Labels), maxLabels)+1)
	// Room for "labels-omitted: NNNN" in case labels are left out.
	left := metadataBudget - entrySize(metaLabelsLeftOut, "10000")
	for _, f := range fields {
		if f.value == "" {
			continue
		}
		v := escapeValue(f.value, min(maxMetaValueLen, left-entrySize(f.key, "")))
		if v == "" {
			continue
		}
		out[f.key] = v
		left -= entrySize(f.key, v)
	}

	omitted := 0
	stored := 0
	for _, k := range slices.Sorted(maps.Keys(meta.Labels)) {
		key := labelKey(k)
		if _, dup := out[key]; dup || key == labelKeyPrefix {
			omitted++
			continue
		}
		v := escapeValue(meta.Labels[k], maxMetaValueLen)
		if stored >= maxLabels || entrySize(key, v) > left {
			omitted++
			continue
		}
		out[key] = v
		left -= entrySize(key, v)
		stored++
	}
	if omitted > 0 {
		out[metaLabelsLeftOut] = strconv.Itoa(omitted)
	}
	return out
}

// labelKey maps a Kubernetes label key to an S3 metadata key: "label-" followed by
// the key in lower case with every character other than [a-z0-9-] replaced by '-'
// ("app.kubernetes.io/name" → "label-app-kubernetes-io-name"), at most 64 bytes.
func labelKey(k string) string {
	var b strings.Builder
	b.WriteString(labelKeyPrefix)
	for _, r := range strings.ToLower(k) {
		if b.Len() >= maxLabelKeyLen {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

// escapeValue percent-encodes the bytes of v that are not printable ASCII, '%', and
// spaces at either end (HTTP would trim them), then cuts the result to at most
// limit bytes without splitting an escape. A limit <= 0 gives "".
func escapeValue(v string, limit int) string {
	if limit <= 0 {
		return ""
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		edgeSpace := c == ' ' && (i == 0 || i == len(v)-1)
		if c < 0x20 || c > 0x7e || c == '%' || edgeSpace {
			if b.Len()+3 > limit {
				break
			}
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		if b.Len()+1 > limit {
			break
		}
		b.WriteByte(c)
	}
	s := b.String()
	// A value cut short may now end in a space, which HTTP would trim.
	for strings.HasSuffix(s, " ") {
		s = strings.TrimSuffix(s, " ")
	}
	return s
}

// entrySize is what one metadata entry counts against the 2 KiB limit, MinIO's way.
func entrySize(key, value string) int { return len(metaHeaderPrefix) + len(key) + len(value) }

// metadataSize is the size of m counted against the 2 KiB user metadata limit.
func metadataSize(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += entrySize(k, v)
	}
	return n
}
