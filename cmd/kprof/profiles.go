package main

import "github.com/spf13/cobra"

func init() { subcommandFactories = append(subcommandFactories, newProfilesCmd) }

// newProfilesCmd is `kprof profiles`, the commands over stored profiles.
func newProfilesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profiles",
		Short: "Work with stored profiles: merge and diff them",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newProfilesMergeCmd(), newProfilesDiffCmd())
	return cmd
}
