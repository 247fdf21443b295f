// Command momgate-qmgr is the qmgr-style administration CLI of momgate.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/cliutil"
	"github.com/momgate/momgate/qmgr"
)

func main() {
	if err := app().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func app() *cli.App {
	return &cli.App{
		Name:  "momgate-qmgr",
		Usage: "administer a momgate server with qmgr directives",
		UsageText: "momgate-qmgr --state-dir DIR [--json] [-c DIRECTIVE]...\n" +
			"momgate-qmgr --state-dir DIR < directives.txt\n" +
			"momgate-qmgr --state-dir DIR            (interactive Qmgr: prompt)\n" +
			"momgate-qmgr completion bash|zsh",
		Description: "Directives (unambiguous abbreviations accepted, as in PBS qmgr):\n" +
			"  create node NAME Mom=ADDR[,Port=N]   register a node; prints its one-time enrollment token\n" +
			"  delete node NAME                     remove a node; every MOM denies it at once, then the key rotates\n" +
			"  set node NAME Mom=ADDR               move a node: its old address is denied, then the key rotates\n" +
			"  list node [NAME]                     show nodes and their state\n" +
			"  print server                         print directives that recreate the configuration\n" +
			"  list server                          show the server's attributes\n" +
			"  set server ATTR=VALUE[,ATTR=VALUE]   mode, key_distribution, token_ttl, freshness, heartbeat, key_grace\n" +
			"  list key                             cluster keys, the rotation, and each node's key state\n" +
			"  rotate key                           generate a new cluster key and roll it out\n" +
			"  export key ID file=PATH              write key ID to a new file, mode 0400 (manual distribution)\n" +
			"  activate key ID                      make the distributed key active (manual distribution)\n" +
			"With -c, each directive runs in order and the first failure exits non-zero; directives on\n" +
			"standard input stop at the first failure too. --json prints machine-readable results\n" +
			"(create node's JSON carries the enrollment token in the field \"token\").\n\n" +
			"qmgr talks to the server's admin socket (STATE_DIR/admin.sock, owner-only), so run it as the\n" +
			"server's user on the server host. MOMGATE_STATE_DIR (or MOMGATE_SERVER_STATE_DIR) saves typing\n" +
			"--state-dir.\n\n" +
			"Examples:\n\n" +
			"    momgate-qmgr --state-dir /var/lib/momgate/server -c \"create node n1 Mom=10.0.1.7\"\n" +
			"    momgate-qmgr --state-dir /var/lib/momgate/server --json -c \"list node\"\n" +
			"    momgate-qmgr --state-dir /var/lib/momgate/server -c \"set server mode=compat,token_ttl=2h\"\n" +
			"    momgate-qmgr --state-dir /var/lib/momgate/server -c \"print server\" > server.qmgr   # save\n" +
			"    momgate-qmgr --state-dir /var/lib/momgate/server < server.qmgr                    # replay",
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		// Directives contain commas (Mom=ADDR,Port=N): never split -c values.
		DisableSliceFlagSeparator: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state-dir", Usage: "the server's state `DIR` (its admin socket is STATE_DIR/admin.sock)", EnvVars: []string{"MOMGATE_STATE_DIR", "MOMGATE_SERVER_STATE_DIR"}, TakesFile: true},
			&cli.StringFlag{Name: "socket", Usage: "`PATH` of the server's admin socket (overrides --state-dir)", TakesFile: true},
			&cli.StringSliceFlag{Name: "c", Usage: "run this `DIRECTIVE` (repeatable)"},
			&cli.BoolFlag{Name: "json", Usage: "machine-readable JSON output"},
		},
		Commands: []*cli.Command{cliutil.CompletionCommand(), cliutil.ManCommand()},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("qmgr: unexpected arguments %q (quote a directive: -c \"list node\")", c.Args().Slice())
			}
			// No signal context: Ctrl-C ends qmgr at once, as it does PBS qmgr
			// (a read from a terminal cannot be interrupted).
			return qmgr.Run(context.Background(), qmgr.Config{
				StateDir: c.String("state-dir"), Socket: c.String("socket"), Commands: c.StringSlice("c"),
				JSON: c.Bool("json"), In: os.Stdin, Out: c.App.Writer, Err: c.App.ErrWriter,
			})
		},
	}
}
