package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
)

// probeBodyLimit bounds what is read of a probe's answer (the part quoted in an error).
const probeBodyLimit = 4 << 10

// newProbeCmd is `kprof probe URL`: one GET, exit 0 on a 2xx answer. The image has no curl or
// wget; the chart's `helm test` pod runs this against the operator's health Service. Hidden:
// it is plumbing, not a user command.
func newProbeCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:    "probe URL",
		Short:  "GET an http(s) URL and exit 0 when the answer is 2xx (the chart's helm test)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout <= 0 {
				return fmt.Errorf("--timeout %s: must be positive", timeout)
			}
			status, err := probe(cmd.Context(), args[0], timeout)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", args[0], status)
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "time allowed for the whole request, answer included")
	return cmd
}

// probe GETs rawURL within timeout and returns the status line of a 2xx answer; any other
// answer is an error quoting the status and the start of the body.
func probe(ctx context.Context, rawURL string, timeout time.Duration) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("probe %q: want an http:// or https:// URL with a host", rawURL)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", fmt.Errorf("probe %s: %w", rawURL, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "", fmt.Errorf("probe %s: no answer within --timeout %s", rawURL, timeout)
		}
		return "", fmt.Errorf("probe %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, probeBodyLimit))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("probe %s: %s: %s", rawURL, resp.Status, probeSummary(body))
	}
	return resp.Status, nil
}

// probeSummary turns the start of an answer into one short line.
func probeSummary(body []byte) string {
	s := strings.Join(strings.FieldsFunc(string(body), unicode.IsSpace), " ")
	if s == "" {
		return "(empty body)"
	}
	const max = 200
	if r := []rune(s); len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}
