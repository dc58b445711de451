// Command millrace runs the background jobs of the lettings platform: serve
// runs the router, the HTTP API and the cron ticker; the other subcommands
// operate it. Configuration comes from flags and MILLRACE_* variables.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := rootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "millrace:", err)
		os.Exit(1)
	}
}

func rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "millrace",
		Short:         "Background jobs of the lettings platform, on a Watermill router",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	registerConfigFlags(root)
	root.AddCommand(serveCommand(), migrateCommand(), demoCommand(), publishCommand(),
		topicsCommand(), poisonCommand(), cronCommand(), healthcheckCommand())
	return root
}
