package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenManCmd writes the man pages, one per command, generated from the
// same definitions as --help (make man). Hidden: a build step, not a user
// command.
func newGenManCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    "gen-man DIR",
		Short:  "write the man pages to DIR",
		Hidden: true,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("exactly one DIR is needed")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root := c.Root()
			root.DisableAutoGenTag = true // reproducible pages: no date
			header := &doc.GenManHeader{Section: "1", Source: "onedrivefs " + buildVersion(), Manual: "onedrivefs manual"}
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "man pages written to %s\n", args[0])
			return nil
		},
	}
}
