package s3

import (
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
)

func TestPlanUpload(t *testing.T) {
	tests := []struct {
		name         string
		size         int
		partSize     int64
		wantParts    int
		wantPartSize int64
	}{
		{name: "data below the part size is one put with a full-object checksum", size: 99, partSize: 100, wantParts: 0, wantPartSize: 100},
		{name: "data of exactly the part size is one part", size: 100, partSize: 100, wantParts: 1, wantPartSize: 100},
		{name: "a short last part counts as a part", size: 201, partSize: 100, wantParts: 3, wantPartSize: 100},
		{name: "the part size grows to stay within 10,000 parts", size: 20001, partSize: 1, wantParts: 6667, wantPartSize: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(strings.Repeat("p", tt.size))
			u := planUpload(data, tt.partSize)
			if u.parts != tt.wantParts || u.partSize != tt.wantPartSize {
				t.Fatalf("parts = %d of %d bytes, want %d of %d", u.parts, u.partSize, tt.wantParts, tt.wantPartSize)
			}
			full := sha256.Sum256(data)
			if tt.wantParts == 0 {
				if want := base64.StdEncoding.EncodeToString(full[:]); u.checksum != want {
					t.Fatalf("checksum = %q, want base64(sha256(data)) %q", u.checksum, want)
				}
				return
			}
			// The composite: sha256 over the concatenated part digests, "-N".
			var digests []byte
			for off := 0; off < tt.size; off += int(tt.wantPartSize) {
				d := sha256.Sum256(data[off:min(off+int(tt.wantPartSize), tt.size)])
				digests = append(digests, d[:]...)
			}
			outer := sha256.Sum256(digests)
			want := base64.StdEncoding.EncodeToString(outer[:]) + "-" + strconv.Itoa(tt.wantParts)
			if u.checksum != want {
				t.Fatalf("checksum = %q, want %q", u.checksum, want)
			}
		})
	}
}
