package local

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadRejectsBadS3FilesNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"every bad s3 and spool field is reported by its path", "bad-s3.yaml", []string{
			`storage.s3.bucket: character ':' is not allowed in "s3://profiles/dev": give the bucket name only`,
			`storage.s3.region: only lower-case letters, digits and '-' are allowed, got "US-East-1"`,
			"storage.s3.endpoint: must be an http(s) URL such as http://127.0.0.1:9000, got minio:9000",
			`storage.s3.kmsKeyID: requires serverSideEncryption "aws:kms", got "AES256"`,
			"storage.spool.maxBytes: must be positive, got -1",
			"storage.spool.maxAgeSeconds: must be from 1 to 31536000, got -60",
		}},
		{"an s3 section without a bucket is rejected", "bad-s3-no-bucket.yaml", []string{"storage.s3.bucket: is required"}},
		{"credentials in the file are an unknown field, since they come from the AWS default chain", "bad-s3-credentials-in-file.yaml",
			[]string{"storage.s3.accessKeyID: unknown field (want one of bucket, endpoint, kmsKeyID, region, serverSideEncryption, usePathStyle)"}},
		{"a spool without s3 is rejected rather than silently unused", "bad-spool-without-s3.yaml",
			[]string{"storage.spool: is only used with storage.s3"}},
		{"a spool smaller than the largest profile is rejected", "bad-spool-too-small.yaml", []string{
			"storage.spool.maxBytes: must be at least limits.maxProfileBytes (67108864) so the largest profile fits, got 1048576",
		}},
		{"storage.local together with storage.s3 is rejected, as the CRD rejects localStorage with s3Config", "bad-local-and-s3.yaml", []string{
			"storage: set at most one of storage.local and storage.s3",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tc.file))
			if err == nil {
				t.Fatalf("Load(%s) succeeded, want an error", tc.file)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load(%s) error = %q\nwant it to contain %q", tc.file, err, w)
				}
			}
		})
	}
}

func TestLoadAcceptsS3Files(t *testing.T) {
	pathStyle := true
	for _, tc := range []struct {
		name, file string
		want       StorageConfig
	}{
		{"a full s3 file keeps every value it sets", "good-s3.yaml", StorageConfig{
			S3: &S3StorageConfig{
				Bucket: "profiles", Region: "us-east-1", Endpoint: "http://127.0.0.1:9000", UsePathStyle: &pathStyle,
				ServerSideEncryption: "aws:kms", KMSKeyID: "alias/kprof",
			},
			Spool:       SpoolConfig{Path: "./profiles/.spool", MaxBytes: 1 << 30, MaxAgeSeconds: 86400},
			KeyTemplate: "{prefix}/{namespace}/{service}/{date}/{timestamp}_{pod}_{type}.pb.gz",
			Prefix:      "dev",
		}},
		{"a bucket alone gets the documented spool defaults", "minimal-s3.yaml", StorageConfig{
			S3:          &S3StorageConfig{Bucket: "profiles"},
			Spool:       SpoolConfig{Path: "./profiles/.spool", MaxBytes: DefaultSpoolMaxBytes, MaxAgeSeconds: DefaultSpoolMaxAgeSeconds},
			KeyTemplate: "{prefix}/{namespace}/{service}/{date}/{timestamp}_{pod}_{type}.pb.gz",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatalf("Load(%s): %v", tc.file, err)
			}
			if !reflect.DeepEqual(c.Storage, tc.want) {
				t.Fatalf("Storage = %+v (s3 %+v)\nwant %+v (s3 %+v)", c.Storage, c.Storage.S3, tc.want, tc.want.S3)
			}
			if !c.Storage.UsesS3() {
				t.Error("UsesS3() = false with storage.s3 set")
			}
		})
	}
}

func TestValidateS3Rules(t *testing.T) {
	valid := func() Config {
		c := Config{
			Targets: []TargetConfig{{Name: "a", URL: "http://127.0.0.1:1/debug/pprof"}},
			Storage: StorageConfig{S3: &S3StorageConfig{Bucket: "profiles"}},
		}
		c.SetDefaults()
		return c
	}
	for _, tc := range []struct {
		name    string
		mutate  func(c *Config)
		wantErr string // empty: valid
	}{
		{"a bucket with only defaults is valid", func(*Config) {}, ""},
		{"an https endpoint is accepted", func(c *Config) { c.Storage.S3.Endpoint = "https://s3.example.internal" }, ""},
		{"aws:kms without a key uses the default key", func(c *Config) { c.Storage.S3.ServerSideEncryption = "aws:kms" }, ""},
		{"an unknown encryption is rejected", func(c *Config) { c.Storage.S3.ServerSideEncryption = "aes256" },
			`storage.s3.serverSideEncryption: must be empty, "AES256" or "aws:kms", got "aes256"`},
		{"a kms key without encryption is rejected", func(c *Config) { c.Storage.S3.KMSKeyID = "alias/x" },
			`storage.s3.kmsKeyID: requires serverSideEncryption "aws:kms", got ""`},
		{"an endpoint with credentials is rejected without echoing them", func(c *Config) {
			c.Storage.S3.Endpoint = "http://minio:secret@127.0.0.1:9000"
		}, "storage.s3.endpoint: must not contain credentials"},
		{"an endpoint with a query is rejected", func(c *Config) { c.Storage.S3.Endpoint = "http://127.0.0.1:9000?x=1" },
			"storage.s3.endpoint: must not have a query or fragment"},
		{"a two-character bucket is rejected", func(c *Config) { c.Storage.S3.Bucket = "ab" },
			`storage.s3.bucket: must be 3 to 63 characters`},
		{"an empty spool path is rejected", func(c *Config) { c.Storage.Spool.Path = " " }, "storage.spool.path: is required"},
		{"a spool age over a year is rejected", func(c *Config) { c.Storage.Spool.MaxAgeSeconds = 366 * 24 * 3600 },
			"storage.spool.maxAgeSeconds: must be from 1 to 31536000, got 31622400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			case tc.wantErr != "" && strings.Contains(err.Error(), "secret"):
				t.Fatalf("Validate() = %v, leaks the endpoint's password", err)
			}
		})
	}
}
