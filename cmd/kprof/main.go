// Command kprof is the one binary of kprof: the operator, the node agent and local mode.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "kprof",
		Short:         "Kubernetes-native continuous profiling",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(subcommands()...)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kprof:", err)
		return 1
	}
	return 0
}

// subcommandFactories is filled by the init functions of the subcommand files.
var subcommandFactories []func() *cobra.Command

func subcommands() []*cobra.Command {
	cmds := make([]*cobra.Command, 0, len(subcommandFactories))
	for _, f := range subcommandFactories {
		cmds = append(cmds, f())
	}
	return cmds
}
