// Command kprof is the one binary of kprof: the operator, the node agent and local mode.
package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/kprof/kprof/internal/version"
)

func main() {
	sig := notifySignals(os.Stderr, os.Exit)
	cmd, err := newRootCmd().ExecuteContextC(sig.ctx)
	sig.stop()
	os.Exit(exitStatus(cmd, err, sig.received(), os.Stderr))
}

func newRootCmd() *cobra.Command { return rootCmd(subcommands()...) }

// rootCmd is kprof with the given subcommands.
func rootCmd(subs ...*cobra.Command) *cobra.Command {
	var lo logOptions
	root := &cobra.Command{
		Use:   "kprof",
		Short: "Kubernetes-native continuous profiling",
		Long: `kprof captures pprof profiles: of annotated pods in a cluster (kprof operator), of every
process on a node with eBPF (kprof agent), and of targets listed in a file or named on the
command line without a cluster (kprof run, kprof capture).

Exit status: 0 on success, 1 on an error, 130 when interrupted (Ctrl-C); the operator and
the agent exit 0 when a signal (Ctrl-C, SIGTERM) stopped them cleanly. A first Ctrl-C stops
gracefully; a second exits at once.`,
		Version:       version.Get().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return setUpLogging(cmd, lo)
		},
	}
	root.SetVersionTemplate("{{.Version}}\n")
	addLogFlags(root.PersistentFlags(), &lo)
	root.AddCommand(subs...)
	return root
}

// subcommands lists every subcommand of kprof, each built by its own file.
func subcommands() []*cobra.Command {
	return []*cobra.Command{
		newAgentCmd(),
		newCaptureCmd(),
		newOperatorCmd(),
		newProbeCmd(),
		newProfilesCmd(),
		newRunCmd(),
		newUICmd(),
		newVersionCmd(),
	}
}

// serviceAnnotation marks the subcommands that run until stopped (the operator, the
// agent): a signal is how they are stopped, so a clean stop exits 0.
const serviceAnnotation = "kprof.io/service"

func isService(cmd *cobra.Command) bool {
	return cmd != nil && cmd.Annotations[serviceAnnotation] == "true"
}
