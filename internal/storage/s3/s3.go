// Package s3 is the S3 storage.Store: each profile is one object, uploaded with the
// AWS SDK's transfer manager and verified before Put returns.
//
// Put returning nil means the object is in the bucket and HeadObject reported its
// length and SHA-256 checksum equal to those of the bytes Put was given (see upload
// for how single and multipart uploads are verified), so a spool in front of the store
// may delete its copy. Every error is a *storage.Error whose Kind says what went wrong
// (missing bucket, denied, bad credentials, unreachable endpoint, failed verification)
// and whose message names the bucket, key and endpoint, never a credential. An error
// caused by the caller's ctx ending is not classified: it wraps ctx.Err().
//
// Objects are stored as "application/octet-stream", byte for byte what the target
// served (pprof is gzipped protobuf; no Content-Encoding is set, so clients do not
// decompress it on download). The profile's metadata is stored as user metadata
// (x-amz-meta-*), see userMetadata.
//
// API calls, for IAM policies: PutObject, or CreateMultipartUpload + UploadPart +
// CompleteMultipartUpload (and AbortMultipartUpload on failure) for objects of
// PartSize bytes or more; HeadObject to verify; PutObject of an empty index marker
// (storage.MarkerKey); ListObjectsV2, HeadObject and GetObject to browse (read.go); HeadBucket (and ListObjectsV2 with
// MaxKeys 1 to explain a 403) in Check.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	kplog "github.com/kprof/kprof/internal/logging"
	"github.com/kprof/kprof/internal/storage"
)

const (
	// contentType of stored profiles: the bytes the target served, not re-encoded.
	contentType = "application/octet-stream"
	// uploadConcurrency is how many parts of one multipart upload are in flight. The
	// transfer manager allocates (concurrency+1) part buffers per multipart upload.
	uploadConcurrency = 2
	// abortTimeout bounds AbortMultipartUpload after a failed multipart upload, which
	// runs even when the caller's ctx has ended. A lifecycle rule removes what it misses.
	abortTimeout = 10 * time.Second
	// defaultRegionForEndpoint is the region used to sign for a custom endpoint when
	// neither Config nor the AWS configuration names one.
	defaultRegionForEndpoint = "us-east-1"
	// maxKeyLen is S3's limit of a key's length in bytes.
	maxKeyLen = 1024
)

var (
	_ storage.Store   = (*Store)(nil)
	_ storage.Checker = (*Store)(nil)
)

// Store puts profiles into an S3 bucket. It is safe for concurrent use.
type Store struct {
	bucket    string
	region    string
	endpoint  string // "" for AWS
	sse       string
	kmsKeyID  string
	partSize  int64
	timeout   time.Duration
	maxLabels int

	client *awss3.Client
	tm     *transfermanager.Client
	creds  aws.CredentialsProvider
}

// New fills in cfg's defaults, validates it and builds a Store from it and the AWS
// configuration chain (config.LoadDefaultConfig). It does not contact the network: credentials are
// retrieved on first use; call Check to test the bucket and credentials. The logger
// in ctx (logr) receives the SDK's own log lines at V(1).
func New(ctx context.Context, cfg Config) (*Store, error) {
	return newStore(ctx, cfg)
}

// newStore is New with extra AWS configuration options (tests: anonymous credentials).
func newStore(ctx context.Context, cfg Config, extra ...func(*config.LoadOptions) error) (*Store, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var httpClient config.HTTPClient = defaultHTTPClient()
	if cfg.HTTPClient != nil {
		httpClient = cfg.HTTPClient
	}
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithLogger(sdkLogger{log: kplog.FromContext(ctx).With("logger", "aws-sdk")}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if c := cfg.Credentials; c != nil {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)))
	}
	opts = append(opts, extra...)
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 store s3://%s: load AWS configuration: %w", cfg.Bucket, err)
	}
	if awsCfg.Region == "" {
		if cfg.Endpoint == "" {
			return nil, fmt.Errorf("s3 store s3://%s: no region: set Region (or AWS_REGION in the environment)", cfg.Bucket)
		}
		awsCfg.Region = defaultRegionForEndpoint
	}
	if awsCfg.Credentials != nil {
		awsCfg.Credentials = &credentialsProvider{inner: awsCfg.Credentials}
	}

	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = *cfg.UsePathStyle
	})
	tm := transfermanager.New(client, func(o *transfermanager.Options) {
		o.PartSizeBytes = cfg.PartSize
		o.MultipartUploadThreshold = cfg.PartSize
		o.ChecksumAlgorithm = tmtypes.ChecksumAlgorithmSha256
		o.Concurrency = uploadConcurrency
		o.FailTimeout = abortTimeout
	})
	return &Store{
		bucket: cfg.Bucket, region: awsCfg.Region, endpoint: cfg.Endpoint,
		sse: cfg.SSE, kmsKeyID: cfg.KMSKeyID, partSize: cfg.PartSize, timeout: cfg.Timeout,
		maxLabels: cfg.MaxMetadataLabels, client: client, tm: tm, creds: awsCfg.Credentials,
	}, nil
}

// String names the store: "s3://bucket" for AWS, "s3://bucket@endpoint" otherwise.
func (s *Store) String() string {
	if s.endpoint == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "@" + s.endpoint
}

// Location implements storage.Locator: s3://bucket/key.
func (s *Store) Location(key string) string { return "s3://" + s.bucket + "/" + key }

// endpointName names where requests go, for error messages.
func (s *Store) endpointName() string {
	if s.endpoint == "" {
		return "AWS S3 in " + s.region
	}
	return s.endpoint
}

// op names an operation on key ("" for the bucket) for error messages.
func (s *Store) op(verb, key string) string {
	obj := "s3://" + s.bucket
	if key != "" {
		obj += "/" + key
	}
	return fmt.Sprintf("s3 store: %s %s (endpoint %s)", verb, obj, s.endpointName())
}

// Put uploads data under key with meta as user metadata and verifies the stored
// object (length and SHA-256) before returning nil. An upload of PartSize bytes or
// more is a multipart upload, aborted when it fails. Timeout bounds the whole Put.
func (s *Store) Put(ctx context.Context, key string, data []byte, meta storage.Meta) error {
	op := s.op("put", key)
	if err := checkKey(key); err != nil {
		return &storage.Error{Kind: storage.KindStoreError, Op: op, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	opCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	plan := planUpload(data, s.partSize)
	in := &transfermanager.UploadObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(key),
		Body:              bytes.NewReader(data),
		ContentType:       aws.String(contentType),
		ChecksumAlgorithm: tmtypes.ChecksumAlgorithmSha256,
		Metadata:          userMetadata(meta, plan.sha256Hex, s.maxLabels),
	}
	if plan.parts == 0 {
		// A single PutObject: send the precomputed checksum as a header, so S3 checks the
		// bytes against a value computed from data (not from the stream) and no
		// aws-chunked trailer is needed. Multipart parts get theirs from the SDK.
		in.ChecksumSHA256 = aws.String(plan.checksum)
	}
	if s.sse != "" {
		in.ServerSideEncryption = tmtypes.ServerSideEncryption(s.sse)
	}
	if s.kmsKeyID != "" {
		in.SSEKMSKeyID = aws.String(s.kmsKeyID)
	}
	if _, err := s.tm.UploadObject(opCtx, in); err != nil {
		return s.classify(ctx, op, fmt.Errorf("upload: %w", err))
	}

	head, err := s.client.HeadObject(opCtx, &awss3.HeadObjectInput{
		Bucket:       aws.String(s.bucket),
		Key:          aws.String(key),
		ChecksumMode: s3types.ChecksumModeEnabled,
	})
	if err != nil {
		if httpStatus(err) == http.StatusNotFound && ctx.Err() == nil {
			return &storage.Error{Kind: storage.KindVerifyFailed, Op: op,
				Err: fmt.Errorf("verify: the object is not there after the upload succeeded: %w", err)}
		}
		return s.classify(ctx, op, fmt.Errorf("verify: head object: %w", err))
	}
	if err := plan.verifyHead(head); err != nil {
		return &storage.Error{Kind: storage.KindVerifyFailed, Op: op, Err: fmt.Errorf("verify: %w", err)}
	}
	if s.sse != "" && string(head.ServerSideEncryption) != s.sse {
		return &storage.Error{Kind: storage.KindVerifyFailed, Op: op,
			Err: fmt.Errorf("verify: stored object's server-side encryption is %q, requested %q (does the endpoint support it?)", head.ServerSideEncryption, s.sse)}
	}
	kplog.FromContext(ctx).Debug("stored profile", "store", s.String(), "key", key,
		"bytes", len(data), "parts", plan.parts, "sha256", plan.sha256Hex)
	s.putMarker(opCtx, key, meta)
	return nil
}

// putMarker writes the empty index marker object of the profile stored under key (see
// storage.MarkerKey), so listing the prefix shows its metadata without a HEAD. It is
// best effort: the profile is stored and verified already, and a reader lists a
// profile without a marker by asking HEAD for its metadata, so a failure is logged,
// not returned (returning it would make a spool upload the profile again).
func (s *Store) putMarker(ctx context.Context, key string, meta storage.Meta) {
	log := kplog.FromContext(ctx)
	mk, ok := storage.MarkerKey(key, meta)
	if !ok {
		log.Debug("profile key too long for an index marker; listing it will cost a HEAD request", "key", key)
		return
	}
	in := &awss3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(mk), Body: bytes.NewReader(nil),
		ContentLength: aws.Int64(0), ContentType: aws.String(contentType),
	}
	if s.sse != "" {
		in.ServerSideEncryption = s3types.ServerSideEncryption(s.sse)
	}
	if s.kmsKeyID != "" {
		in.SSEKMSKeyId = aws.String(s.kmsKeyID)
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		log.Error("write index marker (the profile is stored; listing it will cost a HEAD request)", "err", err,
			"store", s.String(), "key", key)
	}
}

// Check tells whether the bucket exists and the credentials may use it, with
// HeadBucket. A HEAD answer carries no error code, so a 403 is explained by asking
// ListObjectsV2 (MaxKeys 1, the same s3:ListBucket permission) for one.
func (s *Store) Check(ctx context.Context) error {
	op := s.op("check", "")
	opCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	_, err := s.client.HeadBucket(opCtx, &awss3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return s.classify(ctx, op, err)
	}
	switch httpStatus(err) {
	case http.StatusNotFound:
		return &storage.Error{Kind: storage.KindNoSuchBucket, Op: op,
			Err: fmt.Errorf("bucket %q does not exist: head bucket: %w", s.bucket, err)}
	case http.StatusMovedPermanently:
		return &storage.Error{Kind: storage.KindStoreError, Op: op,
			Err: fmt.Errorf("%s: head bucket: %w", s.regionProblem(err, "HeadBucket 301 Moved Permanently"), err)}
	case http.StatusBadRequest:
		why := s.regionProblem(err, "HeadBucket 400 Bad Request")
		if bucketRegionHeader(err) == "" {
			why = fmt.Sprintf("HeadBucket answered 400 Bad Request without details: usually Region %q differs from "+
				"the bucket's region (set Region), or the store does not accept the bucket name %q", s.region, s.bucket)
		}
		return &storage.Error{Kind: storage.KindStoreError, Op: op, Err: fmt.Errorf("%s: head bucket: %w", why, err)}
	case http.StatusForbidden:
		_, lerr := s.client.ListObjectsV2(opCtx, &awss3.ListObjectsV2Input{Bucket: aws.String(s.bucket), MaxKeys: aws.Int32(1)})
		var apiErr smithy.APIError
		if errors.As(lerr, &apiErr) && apiErr.ErrorCode() != "Forbidden" {
			return s.classify(ctx, op, fmt.Errorf("head bucket: 403 Forbidden; list objects: %w", lerr))
		}
	}
	return s.classify(ctx, op, fmt.Errorf("head bucket: %w", err))
}

// CredentialSource retrieves the credentials the store signs with and returns the name
// of their provider ("StaticCredentials", "EnvConfigCredentials",
// "WebIdentityCredentials", "SharedConfigCredentials: <file>", "EC2RoleProvider", ...),
// for status and diagnostics. It never returns the credentials themselves.
func (s *Store) CredentialSource(ctx context.Context) (string, error) {
	if s.creds == nil || aws.IsCredentialsProvider(s.creds, (*aws.AnonymousCredentials)(nil)) {
		return "AnonymousCredentials", nil
	}
	opCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	c, err := s.creds.Retrieve(opCtx)
	if err != nil {
		return "", s.classify(ctx, "s3 store: retrieve credentials for "+s.String(), err)
	}
	return c.Source, nil
}

// checkKey rejects keys S3 would refuse or that clients would rewrite: empty, longer
// than 1024 bytes, not UTF-8, with control characters, a leading '/', empty, "." or
// ".." segments.
func checkKey(key string) error {
	switch {
	case key == "":
		return errors.New("key is empty")
	case len(key) > maxKeyLen:
		return fmt.Errorf("key is %d bytes, more than S3's %d", len(key), maxKeyLen)
	case !utf8.ValidString(key):
		return errors.New("key is not valid UTF-8")
	case strings.HasPrefix(key, "/"):
		return errors.New("key must not start with '/'")
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("key contains control character %q", r)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("key has an empty, \".\" or \"..\" segment")
		}
	}
	return nil
}

// credentialsProvider marks every failure to retrieve credentials as errCredentials,
// so it is classified as KindInvalidCredentials. The SDK still sees the wrapped
// provider's type (anonymous, cached).
type credentialsProvider struct{ inner aws.CredentialsProvider }

func (p *credentialsProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.inner.Retrieve(ctx)
	if err != nil {
		return c, &errCredentials{err: err}
	}
	return c, nil
}

// IsCredentialsProvider lets aws.IsCredentialsProvider see through the wrapper.
func (p *credentialsProvider) IsCredentialsProvider(target aws.CredentialsProvider) bool {
	return aws.IsCredentialsProvider(p.inner, target)
}

// ProviderSources reports the wrapped provider's sources (SDK user agent).
func (p *credentialsProvider) ProviderSources() []aws.CredentialSource {
	if ps, ok := p.inner.(aws.CredentialProviderSource); ok {
		return ps.ProviderSources()
	}
	return nil
}

// sdkLogger sends the SDK's log lines (retries, checksum warnings) to the log at debug level.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	l.log.Debug("aws sdk", "classification", string(c), "message", fmt.Sprintf(format, v...))
}
