package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/local"
	"github.com/kprof/kprof/internal/operator"
)

// viaOperatorFlags are the flags of `kprof capture pod --via-operator`.
type viaOperatorFlags struct {
	enabled  bool
	duration time.Duration
	reason   string
	config   string
	poll     time.Duration
}

// addViaOperatorFlags registers --via-operator and its flags on the pod command.
func addViaOperatorFlags(cmd *cobra.Command, v *viaOperatorFlags) {
	fl := cmd.Flags()
	fl.BoolVar(&v.enabled, "via-operator", false, "ask the kprof operator to capture: create a ProfileCapture, wait until it finished, print where its profiles were stored (with the ProfilingConfig's storage and policy; the pod must be annotated and selected)")
	fl.DurationVar(&v.duration, "duration", 0, "with --via-operator: length of the CPU profile, e.g. 10s (default: --seconds if given, else the ProfilingConfig's)")
	fl.StringVar(&v.reason, "reason", "", "with --via-operator: why, stored with the profiles (e.g. \"incident 4711\")")
	fl.StringVar(&v.config, "config", "", "with --via-operator: the ProfilingConfig (NAMESPACE/NAME) whose storage and policy are used; it must select the pod (default: the first that does)")
	v.poll = time.Second
	// --types reads as well as --type here.
	cmd.SetGlobalNormalizationFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "types" {
			name = "type"
		}
		return pflag.NormalizedName(name)
	})
}

// captureViaOperator creates a ProfileCapture of the pod and waits until the operator
// finished it. It fails with the capture's message when it ended Failed or Skipped.
func captureViaOperator(ctx context.Context, cmd *cobra.Command, f captureFlags, v viaOperatorFlags, ref string) error {
	name, err := local.ParsePodRef(ref)
	if err != nil {
		return err
	}
	spec := profilingv1alpha1.ProfileCaptureSpec{Pod: name.Name, Reason: v.reason, Trigger: profilingv1alpha1.TriggerUser}
	if cmd.Flags().Changed("type") {
		for _, s := range f.types {
			t, err := capture.ParseProfileType(s)
			if err != nil {
				return fmt.Errorf("--types: %w", err)
			}
			spec.ProfileTypes = append(spec.ProfileTypes, profilingv1alpha1.ProfileType(t))
		}
	}
	switch {
	case v.duration < 0 || (v.duration > 0 && v.duration < time.Second) || v.duration > 300*time.Second:
		return fmt.Errorf("--duration %s: must be between 1s and 300s", v.duration)
	case v.duration > 0:
		spec.CPUDurationSeconds = int32(v.duration / time.Second)
	case cmd.Flags().Changed("seconds"):
		spec.CPUDurationSeconds = int32(f.seconds)
	}
	if v.config != "" {
		ns, cname, ok := strings.Cut(v.config, "/")
		if !ok || ns == "" || cname == "" {
			return fmt.Errorf("--config %q: want NAMESPACE/NAME", v.config)
		}
		spec.ProfilingConfig = &profilingv1alpha1.ProfilingConfigReference{Namespace: ns, Name: cname}
	}
	restCfg, err := local.LoadKubeConfig(f.kubeconfig, f.kubeContext)
	if err != nil {
		return err
	}
	restCfg.Timeout = local.KubeRequestTimeout
	c, err := client.New(restCfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		return fmt.Errorf("create Kubernetes client for %s: %w", restCfg.Host, err)
	}
	spec.Requester = requester(ctx, c, f)
	prefix := name.Name
	if len(prefix) > 200 {
		prefix = prefix[:200]
	}
	pcap := &profilingv1alpha1.ProfileCapture{ObjectMeta: metav1.ObjectMeta{Namespace: name.Namespace, GenerateName: prefix + "-"}, Spec: spec}
	if err := c.Create(ctx, pcap); err != nil {
		return fmt.Errorf("create a ProfileCapture of pod %s: %w", name, err)
	}
	log := cmdLogger(cmd)
	log.Info("ProfileCapture created, waiting for the operator", "capture", pcap.Namespace+"/"+pcap.Name, "requester", spec.Requester)
	done, err := waitCapture(ctx, c, client.ObjectKeyFromObject(pcap), v.poll)
	if err != nil {
		return err
	}
	printCapture(cmd.OutOrStdout(), done)
	switch done.Status.Phase {
	case profilingv1alpha1.CaptureFailed, profilingv1alpha1.CaptureSkipped:
		return fmt.Errorf("ProfileCapture %s/%s %s: %s", done.Namespace, done.Name, strings.ToLower(string(done.Status.Phase)), done.Status.Message)
	}
	return nil
}

// waitCapture polls the capture until it finished or ctx ends.
func waitCapture(ctx context.Context, c client.Client, key client.ObjectKey, every time.Duration) (*profilingv1alpha1.ProfileCapture, error) {
	var pcap profilingv1alpha1.ProfileCapture
	for {
		err := c.Get(ctx, key, &pcap)
		switch {
		case err == nil:
			switch pcap.Status.Phase {
			case profilingv1alpha1.CaptureStored, profilingv1alpha1.CaptureFailed, profilingv1alpha1.CaptureSkipped:
				return &pcap, nil
			}
		case ctx.Err() != nil:
		default:
			return nil, fmt.Errorf("read ProfileCapture %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			phase := pcap.Status.Phase
			if phase == "" {
				phase = "not picked up by an operator"
			}
			return nil, fmt.Errorf("ProfileCapture %s still %s: %w", key, phase, context.Cause(ctx))
		case <-time.After(every):
		}
	}
}

func printCapture(w io.Writer, pcap *profilingv1alpha1.ProfileCapture) {
	fmt.Fprintf(w, "ProfileCapture %s/%s: %s\n", pcap.Namespace, pcap.Name, pcap.Status.Phase)
	for _, p := range pcap.Status.Profiles {
		fmt.Fprintf(w, "%-10s %s (%d bytes)\n", p.Type, p.Location, p.Size)
	}
	if pcap.Status.Message != "" {
		fmt.Fprintln(w, pcap.Status.Message)
	}
}

// requester names who asks: the user the API server authenticates (SelfSubjectReview),
// else the kubeconfig context's user name, else "".
func requester(ctx context.Context, c client.Client, f captureFlags) string {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ssr := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(rctx, ssr); err == nil && ssr.Status.UserInfo.Username != "" {
		return truncateRunes(ssr.Status.UserInfo.Username, 256)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	raw, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.kubeContext}).RawConfig()
	if err != nil {
		return ""
	}
	cur := f.kubeContext
	if cur == "" {
		cur = raw.CurrentContext
	}
	if kc, ok := raw.Contexts[cur]; ok {
		return truncateRunes(kc.AuthInfo, 256)
	}
	return ""
}

func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
