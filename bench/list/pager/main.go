// Command pager is bench/list's peer: the least work that lists an S3 prefix. It
// pages through it with the AWS SDK's ListObjectsV2 paginator (1000 keys a page)
// and prints how many keys and bytes it saw, nothing else. Credentials and region
// come from the AWS default chain, as for kprof.
//
// Usage:
//
//	pager -endpoint http://127.0.0.1:9000 -bucket B [-prefix P/]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func main() {
	endpoint := flag.String("endpoint", "", "S3-compatible endpoint (default: AWS)")
	bucket := flag.String("bucket", "", "bucket to list")
	prefix := flag.String("prefix", "", "key prefix to list")
	timeout := flag.Duration("timeout", 30*time.Second, "limit of each page request")
	flag.Parse()
	if *bucket == "" {
		fmt.Fprintln(os.Stderr, "pager: -bucket is required")
		os.Exit(2)
	}
	keys, bytes, err := list(context.Background(), *endpoint, *bucket, *prefix, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pager:", err)
		os.Exit(1)
	}
	fmt.Printf("%d keys, %d bytes\n", keys, bytes)
}

func list(ctx context.Context, endpoint, bucket, prefix string, timeout time.Duration) (keys, bytes int64, err error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return 0, 0, err
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
	})
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	p := s3.NewListObjectsV2Paginator(client, in)
	for p.HasMorePages() {
		pageCtx, cancel := context.WithTimeout(ctx, timeout)
		page, err := p.NextPage(pageCtx)
		cancel()
		if err != nil {
			return keys, bytes, fmt.Errorf("list s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys++
			bytes += aws.ToInt64(o.Size)
		}
	}
	return keys, bytes, nil
}
