package s3

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// maxUploadParts is S3's (and the transfer manager's) limit of parts per upload.
const maxUploadParts = 10000

// upload describes how Put sends one object and what S3 must report for it afterwards.
//
// Verification: every request carries a SHA-256 checksum of its body, which S3 checks
// on receipt. Afterwards HeadObject with checksum mode enabled returns the checksum S3
// stored for the object:
//   - single PutObject (size < part size): the full-object checksum, base64(sha256(data));
//   - multipart (size >= part size): the composite checksum S3 derives from the part
//     checksums it verified, base64(sha256(sha256(part1) || ... || sha256(partN))) + "-N".
//
// Put computes the expected value from its own bytes and the part layout the transfer
// manager uses (parts of exactly the part size, the last one shorter), so a match
// proves the bucket holds exactly these bytes. SHA-256 has no full-object checksum for
// multipart uploads on AWS (only the CRC algorithms do), which is why the composite
// is recomputed rather than compared with sha256(data). The full SHA-256 is also stored
// as user metadata "sha256" so readers can check a download without knowing the parts,
// and it tells Put when another writer replaced the object in between.
type upload struct {
	size      int64
	partSize  int64  // part size the transfer manager uses for this size
	parts     int    // 0 for a single PutObject
	sha256Hex string // full-object SHA-256, hex
	checksum  string // what HeadObject must report as ChecksumSHA256
}

// planUpload computes the part layout and expected checksum of data, mirroring the
// transfer manager: multipart from partSize bytes on, with the part size raised when
// the object would need more than 10,000 parts.
func planUpload(data []byte, partSize int64) upload {
	full := sha256.Sum256(data)
	u := upload{size: int64(len(data)), partSize: partSize, sha256Hex: hex.EncodeToString(full[:])}
	if u.size < partSize {
		u.checksum = base64.StdEncoding.EncodeToString(full[:])
		return u
	}
	if u.size/u.partSize >= maxUploadParts {
		u.partSize = u.size/maxUploadParts + 1
	}
	outer := sha256.New()
	for off := int64(0); off < u.size; off += u.partSize {
		part := sha256.Sum256(data[off:min(off+u.partSize, u.size)])
		outer.Write(part[:])
		u.parts++
	}
	u.checksum = base64.StdEncoding.EncodeToString(outer.Sum(nil)) + "-" + strconv.Itoa(u.parts)
	return u
}

// verifyHead compares what HeadObject reported with the upload; the error says what
// differs. It does not classify: Put wraps it as KindVerifyFailed.
func (u upload) verifyHead(h *awss3.HeadObjectOutput) error {
	if got := aws.ToInt64(h.ContentLength); h.ContentLength == nil || got != u.size {
		return fmt.Errorf("stored object has %d bytes, sent %d", got, u.size)
	}
	if got := h.Metadata[metaSHA256]; got != u.sha256Hex {
		return fmt.Errorf("stored object's sha256 metadata is %q, sent %q (was the object replaced by another writer?)", got, u.sha256Hex)
	}
	got := aws.ToString(h.ChecksumSHA256)
	if got == "" {
		return fmt.Errorf("the store reported no SHA-256 checksum for the object (checksum type %q), "+
			"so its content cannot be verified; the endpoint must support S3 additional checksums", h.ChecksumType)
	}
	if got != u.checksum {
		if u.parts > 0 {
			return fmt.Errorf("stored object's SHA-256 checksum is %s, expected %s (composite of %d parts of %d bytes)", got, u.checksum, u.parts, u.partSize)
		}
		return fmt.Errorf("stored object's SHA-256 checksum is %s, expected %s", got, u.checksum)
	}
	return nil
}
