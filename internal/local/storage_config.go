package local

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults and bounds of storage.s3 and storage.spool.
const (
	// DefaultSpoolPath is storage.spool.path when omitted: beside the default local
	// profile directory (storage.local is not set together with storage.s3).
	DefaultSpoolPath          = DefaultStoragePath + "/.spool"
	DefaultSpoolMaxBytes      = 1 << 30
	DefaultSpoolMaxAgeSeconds = 24 * 60 * 60
	maxSpoolMaxAgeSeconds     = 365 * 24 * 60 * 60
	sseAES256, sseKMS         = "AES256", "aws:kms"
	minBucketLen              = 3
	maxBucketLen              = 255
	regionChars               = "abcdefghijklmnopqrstuvwxyz0123456789-"
	bucketPunctuation         = "-._"
)

// S3StorageConfig is an S3 bucket, or a bucket of an S3-compatible store, that
// receives the profiles through the spool. Credentials are never part of the file:
// they come from the AWS SDK's default chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared config files, IRSA web identity,
// container and instance credentials).
type S3StorageConfig struct {
	// Bucket receives the profiles. Required.
	Bucket string `json:"bucket"`
	// Region of the bucket; default: AWS_REGION or the shared config, else
	// us-east-1 with a custom endpoint.
	Region string `json:"region,omitempty"`
	// Endpoint of an S3-compatible store (http://127.0.0.1:9000); empty means AWS.
	Endpoint string `json:"endpoint,omitempty"`
	// UsePathStyle addresses the bucket in the path; default true with an endpoint.
	UsePathStyle *bool `json:"usePathStyle,omitempty"`
	// ServerSideEncryption is "", "AES256" or "aws:kms".
	ServerSideEncryption string `json:"serverSideEncryption,omitempty"`
	// KMSKeyID is the KMS key of "aws:kms"; default: the bucket's or account's key.
	KMSKeyID string `json:"kmsKeyID,omitempty"`
}

// SpoolConfig is the local directory that holds profiles until S3 has them. A
// profile is acknowledged once it is on disk there and deleted once uploaded;
// what a run leaves behind is uploaded by the next run with the same path.
type SpoolConfig struct {
	// Path defaults to DefaultSpoolPath.
	Path string `json:"path,omitempty"`
	// MaxBytes bounds the spool; the oldest profiles are evicted beyond it.
	MaxBytes int64 `json:"maxBytes,omitempty"`
	// MaxAgeSeconds evicts profiles that could not be uploaded for this long.
	MaxAgeSeconds int `json:"maxAgeSeconds,omitempty"`
}

// UsesS3 reports whether profiles go to S3 (through the spool) rather than to
// storage.local.path. Validate rejects a config that sets both.
func (s StorageConfig) UsesS3() bool { return s.S3 != nil }

// MaxAge is maxAgeSeconds as a duration.
func (s SpoolConfig) MaxAge() time.Duration { return time.Duration(s.MaxAgeSeconds) * time.Second }

// setRemoteDefaults fills in the spool of an S3 config; without S3 nothing is defaulted,
// so a spool given without S3 stays visible to validate.
func (s *StorageConfig) setRemoteDefaults() {
	if s.S3 == nil {
		return
	}
	if s.Spool.Path == "" {
		s.Spool.Path = DefaultSpoolPath
	}
	if s.Spool.MaxBytes == 0 {
		s.Spool.MaxBytes = DefaultSpoolMaxBytes
	}
	if s.Spool.MaxAgeSeconds == 0 {
		s.Spool.MaxAgeSeconds = DefaultSpoolMaxAgeSeconds
	}
}

// validateRemote reports every bad field of storage.s3 and storage.spool, by path.
// maxProfileBytes is limits.maxProfileBytes: the spool must hold the largest profile.
func (s StorageConfig) validateRemote(maxProfileBytes int64) []error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if s.S3 == nil {
		if s.Spool != (SpoolConfig{}) {
			fail("storage.spool", "is only used with storage.s3: set storage.s3 or remove storage.spool")
		}
		return errs
	}
	c := s.S3
	if err := checkBucket(c.Bucket); err != nil {
		fail("storage.s3.bucket", "%v", err)
	}
	if c.Region != "" && strings.Trim(c.Region, regionChars) != "" {
		fail("storage.s3.region", "only lower-case letters, digits and '-' are allowed, got %q", c.Region)
	}
	if c.Endpoint != "" {
		if err := checkEndpoint(c.Endpoint); err != nil {
			fail("storage.s3.endpoint", "%v", err)
		}
	}
	switch c.ServerSideEncryption {
	case "", sseAES256, sseKMS:
	default:
		fail("storage.s3.serverSideEncryption", "must be empty, %q or %q, got %q", sseAES256, sseKMS, c.ServerSideEncryption)
	}
	if c.KMSKeyID != "" && c.ServerSideEncryption != sseKMS {
		fail("storage.s3.kmsKeyID", "requires serverSideEncryption %q, got %q", sseKMS, c.ServerSideEncryption)
	}

	if strings.TrimSpace(s.Spool.Path) == "" {
		fail("storage.spool.path", "is required")
	}
	switch n := s.Spool.MaxBytes; {
	case n <= 0:
		fail("storage.spool.maxBytes", "must be positive, got %d", n)
	case n < maxProfileBytes:
		fail("storage.spool.maxBytes", "must be at least limits.maxProfileBytes (%d) so the largest profile fits, got %d", maxProfileBytes, n)
	}
	if n := s.Spool.MaxAgeSeconds; n <= 0 || n > maxSpoolMaxAgeSeconds {
		fail("storage.spool.maxAgeSeconds", "must be from 1 to %d, got %d", maxSpoolMaxAgeSeconds, n)
	}
	return errs
}

// checkBucket accepts the characters S3 and its compatibles allow in bucket names, so
// a URL or a path given as a bucket is caught with a hint.
func checkBucket(b string) error {
	switch {
	case b == "":
		return fmt.Errorf("is required")
	case len(b) < minBucketLen || len(b) > maxBucketLen:
		return fmt.Errorf("must be %d to 63 characters (%d for legacy names), got %q", minBucketLen, maxBucketLen, b)
	}
	for _, r := range b {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(bucketPunctuation, r)) {
			return fmt.Errorf("character %q is not allowed in %q: give the bucket name only, without s3:// or a path", r, b)
		}
	}
	return nil
}

// checkEndpoint requires an http(s) URL with a host and no user information, which
// would put credentials into logs; an endpoint with an '@' is never echoed.
func checkEndpoint(e string) error {
	shown := e
	if strings.Contains(e, "@") {
		shown = "(not shown: it contains '@')"
	}
	u, err := url.Parse(e)
	switch {
	case err == nil && u.User != nil:
		return fmt.Errorf("must not contain credentials: they come from the AWS default chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...)")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("must be an http(s) URL such as http://127.0.0.1:9000, got %s", shown)
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("must not have a query or fragment, got %s", shown)
	}
	return nil
}
