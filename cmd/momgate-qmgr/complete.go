package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/cliutil"
	"github.com/momgate/momgate/qmgr"
)

// completeTimeout bounds the server lookups of one shell completion.
const completeTimeout = 2 * time.Second

// completeDirectiveCommand is what the shell completion scripts run for
// a -c DIRECTIVE being typed: it prints, one per line, the directive so
// far with its last word completed (node names come from the server
// named by --state-dir, --socket or the environment, when it answers).
func completeDirectiveCommand() *cli.Command {
	return &cli.Command{
		Name:      cliutil.CompleteDirectiveCommand,
		Hidden:    true,
		ArgsUsage: "-- DIRECTIVE_SO_FAR",
		Flags:     serverFlags(),
		Action: func(c *cli.Context) error {
			prefix := ""
			if c.NArg() > 0 {
				prefix = c.Args().Get(c.NArg() - 1)
			}
			ctx, cancel := context.WithTimeout(context.Background(), completeTimeout)
			defer cancel()
			cfg := qmgr.Config{StateDir: lineageString(c, "state-dir"), Socket: lineageString(c, "socket")}
			for _, line := range qmgr.CompleteLine(ctx, cfg, prefix) {
				fmt.Fprintln(c.App.Writer, line)
			}
			return nil
		},
	}
}

// lineageString is a string flag given to this command or, failing that,
// to the app (urfave/cli reads only the nearest definition).
func lineageString(c *cli.Context, name string) string {
	for _, x := range c.Lineage() {
		if x.IsSet(name) {
			return x.String(name)
		}
	}
	return c.String(name)
}
