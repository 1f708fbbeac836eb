package local

import (
	"errors"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/storage/s3"
)

// Defaults and bounds of storage.s3 and storage.spool.
const (
	// DefaultSpoolPath is storage.spool.path when omitted: beside the default local
	// profile directory (storage.local is not set together with storage.s3).
	DefaultSpoolPath          = DefaultStoragePath + "/.spool"
	DefaultSpoolMaxBytes      = 1 << 30
	DefaultSpoolMaxAgeSeconds = 24 * 60 * 60
	maxSpoolMaxAgeSeconds     = 365 * 24 * 60 * 60
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
	var errs fieldErrors
	if s.S3 == nil {
		if s.Spool != (SpoolConfig{}) {
			errs.add("storage.spool", "is only used with storage.s3: set storage.s3 or remove storage.spool")
		}
		return errs
	}
	c := s.S3
	if err := check.Bucket(c.Bucket); err != nil {
		errs.add("storage.s3.bucket", "%v", err)
	}
	if err := check.Region(c.Region); err != nil {
		errs.add("storage.s3.region", "%v", err)
	}
	if c.Endpoint != "" {
		switch err := check.Endpoint(c.Endpoint); {
		case errors.Is(err, check.ErrEndpointUserInfo):
			errs.add("storage.s3.endpoint", "must not contain credentials: they come from the AWS default chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...)")
		case err != nil:
			errs.add("storage.s3.endpoint", "%v", err)
		}
	}
	switch c.ServerSideEncryption {
	case "", s3.SSEAES256, s3.SSEKMS:
	default:
		errs.add("storage.s3.serverSideEncryption", "must be empty, %q or %q, got %q", s3.SSEAES256, s3.SSEKMS, c.ServerSideEncryption)
	}
	if c.KMSKeyID != "" && c.ServerSideEncryption != s3.SSEKMS {
		errs.add("storage.s3.kmsKeyID", "requires serverSideEncryption %q, got %q", s3.SSEKMS, c.ServerSideEncryption)
	}

	if strings.TrimSpace(s.Spool.Path) == "" {
		errs.add("storage.spool.path", "is required")
	}
	switch n := s.Spool.MaxBytes; {
	case n <= 0:
		errs.add("storage.spool.maxBytes", "must be positive, got %d", n)
	case n < maxProfileBytes:
		errs.add("storage.spool.maxBytes", "must be at least limits.maxProfileBytes (%d) so the largest profile fits, got %d", maxProfileBytes, n)
	}
	if n := s.Spool.MaxAgeSeconds; n <= 0 || n > maxSpoolMaxAgeSeconds {
		errs.add("storage.spool.maxAgeSeconds", "must be from 1 to %d, got %d", maxSpoolMaxAgeSeconds, n)
	}
	return errs
}
