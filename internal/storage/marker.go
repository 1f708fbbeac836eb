package storage

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// An index marker is an empty object written next to a profile in an object store
// whose key carries the profile's metadata:
//
//	<profile key>.kprof-meta/v1/<base64url(JSON of Meta without labels)>
//
// with the payload cut into segments of at most 200 bytes ("/" between them): MinIO
// stores objects as files and refuses a key segment longer than 255 bytes.
// so that listing a prefix (ListObjectsV2 pages) gives every profile's metadata
// without one HEAD request per object. Markers are bounded by S3's 1024-byte key
// limit: a long reason is cut, then node, target and config are left out; when even
// that does not fit, no marker is written and readers fall back to HEAD.
const (
	// MarkerInfix separates a profile key from its marker's version and payload.
	MarkerInfix = ".kprof-meta/"
	// markerVersion is the payload version written now.
	markerVersion = "v1/"
	// MaxMarkerKeyLen is S3's key length limit, which a marker key must respect.
	MaxMarkerKeyLen = 1024
	// minReasonLen is how short a reason is cut before fields are dropped.
	minReasonLen = 64
	// markerSegmentLen is the longest segment of a marker's payload.
	markerSegmentLen = 200
	// maxSegmentLen is the longest key segment MinIO accepts (a file name).
	maxSegmentLen = 255
)

// MarkerKey returns the marker key of the profile stored under key with meta, and
// false when no marker fits below MaxMarkerKeyLen.
func MarkerKey(key string, meta Meta) (string, bool) {
	if last := key[strings.LastIndex(key, "/")+1:]; len(last)+len(MarkerInfix)-1 > maxSegmentLen {
		return "", false // the marker's first segment would be too long for MinIO
	}
	m := meta
	m.Labels = nil
	base := key + MarkerInfix + markerVersion
	fits := func(m Meta) (string, bool) {
		b, err := json.Marshal(m)
		if err != nil {
			return "", false
		}
		k := base + splitSegments(base64.RawURLEncoding.EncodeToString(b), markerSegmentLen)
		return k, len(k) <= MaxMarkerKeyLen
	}
	if k, ok := fits(m); ok {
		return k, true
	}
	if len(m.Reason) > minReasonLen {
		m.Reason = cutUTF8(m.Reason, minReasonLen)
	}
	m.Node, m.Target, m.Config = "", "", ""
	return fits(m)
}

// IsMarkerKey tells whether key names an index marker rather than a profile.
func IsMarkerKey(key string) bool { return strings.Contains(key, MarkerInfix) }

// ParseMarkerKey returns the profile key and metadata a marker key carries. Every
// error names what is wrong; the payload is bounded by the key length itself.
func ParseMarkerKey(key string) (profileKey string, meta Meta, err error) {
	if len(key) > MaxMarkerKeyLen {
		return "", Meta{}, fmt.Errorf("index marker %.64q...: %d bytes, more than %d", key, len(key), MaxMarkerKeyLen)
	}
	i := strings.LastIndex(key, MarkerInfix)
	if i <= 0 {
		return "", Meta{}, fmt.Errorf("index marker %q: no %q after a profile key", key, MarkerInfix)
	}
	profileKey, rest := key[:i], key[i+len(MarkerInfix):]
	payload, ok := strings.CutPrefix(rest, markerVersion)
	if !ok {
		return "", Meta{}, fmt.Errorf("index marker %q: unknown version %q (this kprof reads %s)", key, rest, strings.TrimSuffix(markerVersion, "/"))
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.ReplaceAll(payload, "/", ""))
	if err != nil {
		return "", Meta{}, fmt.Errorf("index marker %q: payload: %w", key, err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return "", Meta{}, fmt.Errorf("index marker %q: payload: %w", key, err)
	}
	if meta.Type == "" {
		return "", Meta{}, fmt.Errorf("index marker %q: payload has no type", key)
	}
	return profileKey, meta, nil
}

// splitSegments puts a "/" after every n bytes of s (s is ASCII).
func splitSegments(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n])
		b.WriteByte('/')
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

// cutUTF8 cuts s to at most n bytes without splitting a UTF-8 sequence.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
