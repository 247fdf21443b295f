// Command momgate-qmgr is the qmgr-style administration CLI of momgate.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/cliutil"
	"github.com/momgate/momgate/qmgr"
)

const binary = "momgate-qmgr"

func main() {
	os.Exit(run(os.Args, os.Stderr))
}

// run runs the app and returns the exit status: PBS qmgr's (1 syntax,
// 2 refused or failed, 3 server unreachable). Errors are printed unless
// -z or already shown at the prompt.
func run(args []string, stderr io.Writer) int {
	quiet := false
	a := app()
	a.Before = func(c *cli.Context) error { quiet = c.Bool("z"); return nil }
	err := a.Run(args)
	if err != nil && !quiet && !qmgr.Printed(err) {
		fmt.Fprintln(stderr, err)
	}
	return qmgr.ExitStatus(err)
}

const usageText = `momgate-qmgr [-a] [-e] [-n] [-z] [--json] [--state-dir DIR] -c DIRECTIVE [-c DIRECTIVE]...
momgate-qmgr [-a] [-e] [-n] [-z] [--json] [--state-dir DIR] < directives.txt
momgate-qmgr [-a] [-e] [-n] [-z] [--state-dir DIR]            (interactive Qmgr: prompt)
momgate-qmgr nodes [-l] [--needs-sync] [--upgraded] [--pending-key] [--no-header] [--json] [--state-dir DIR]
momgate-qmgr completion bash|zsh|fish
momgate-qmgr man`

const descriptionTail = `Every directive (-c, or a script on standard input) is checked before the first one runs, and the
first failure stops them; earlier ones stay applied. At the prompt errors are printed and the session
goes on, unless -a. --json prints one JSON document per run: the result of a single -c directive, or
an array with one {"directive", "line", "result"} per directive run and, for the one that failed,
"error" and "code" (docs/QMGR.md). create node's result carries the enrollment token in "token".

At a terminal the prompt edits lines (Emacs keys), keeps a history in ~/.momgate_qmgr_history (Up,
Down, Ctrl-R; the history directive lists it) and completes directives, attributes, node names and
key ids with Tab. Ctrl-C abandons a line and, on an empty line, ends qmgr, as Ctrl-D does.

"momgate-qmgr nodes" prints one line per node (name, address, host name, state, protocol, upgraded,
key state, last seen), as pbsnodes -a does; -l keeps the nodes that are not up, as pbsnodes -l does.

Mom= takes an IP address or a host name; the server resolves a name once, when the directive runs, to
the one address the node keeps, and shows it beside the address. "unset server ATTR" puts a server
attribute back to its default.

qmgr talks to the server's admin socket (STATE_DIR/admin.sock, owner-only), so run it as the server's
user on the server host.

Examples:

    momgate-qmgr --state-dir /var/lib/momgate/server -c "create node n1 Mom=n1.cluster"
    momgate-qmgr --state-dir /var/lib/momgate/server -c "create node n2 Mom=10.0.1.8"
    momgate-qmgr --state-dir /var/lib/momgate/server -c "list node n1 Mom,state"
    momgate-qmgr --state-dir /var/lib/momgate/server --json -c "list node" -c "list key"
    momgate-qmgr --state-dir /var/lib/momgate/server -c "set server mode=compat,token_ttl=2h"
    momgate-qmgr --state-dir /var/lib/momgate/server -c "print server" > server.qmgr   # save
    momgate-qmgr --state-dir /var/lib/momgate/server -n < server.qmgr                 # check
    momgate-qmgr --state-dir /var/lib/momgate/server -e < server.qmgr                 # replay
    momgate-qmgr --state-dir /var/lib/momgate/server nodes -l                        # the nodes not up`

func serverFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "state-dir", Usage: "the server's state `DIR` (its admin socket is STATE_DIR/admin.sock)",
			EnvVars: []string{"MOMGATE_STATE_DIR", "MOMGATE_SERVER_STATE_DIR"}, TakesFile: true},
		&cli.StringFlag{Name: "socket", Usage: "`PATH` of the server's admin socket (overrides --state-dir)",
			EnvVars: []string{"MOMGATE_QMGR_SOCKET"}, TakesFile: true},
	}
}

func app() *cli.App {
	flags := append(serverFlags(),
		&cli.StringSliceFlag{Name: "c", Usage: "run this `DIRECTIVE` (repeatable; all are checked before the first runs)"},
		&cli.BoolFlag{Name: "json", Usage: "machine-readable output: one JSON document per run"},
		&cli.BoolFlag{Name: "a", Usage: "abort: the interactive prompt also ends at the first failing directive"},
		&cli.BoolFlag{Name: "e", Usage: "echo each directive to standard output before running it"},
		&cli.BoolFlag{Name: "n", Usage: "check the syntax of every directive, run none (no server is contacted)"},
		&cli.BoolFlag{Name: "z", Usage: "write no error messages; the exit status still tells"},
		&cli.StringFlag{Name: "history-file", Usage: "interactive history `FILE` (default ~/.momgate_qmgr_history; \"-\": none)",
			EnvVars: []string{"MOMGATE_QMGR_HISTORY"}, TakesFile: true},
	)
	return cliutil.WithManPage(&cli.App{
		Name:                 binary,
		Usage:                "administer a momgate server with qmgr directives",
		UsageText:            usageText,
		EnableBashCompletion: true,
		HideHelpCommand:      true,
		// Directives contain commas (Mom=ADDR,Port=N): never split -c values.
		DisableSliceFlagSeparator: true,
		Flags:                     flags,
		Commands:                  []*cli.Command{nodesCommand(), cliutil.CompletionCommand(), completeDirectiveCommand()},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return &qmgr.UsageError{Msg: fmt.Sprintf("qmgr: unexpected arguments %q (quote a directive: -c \"list node\")", c.Args().Slice())}
			}
			// No signal context: Ctrl-C ends qmgr at once, as it does PBS qmgr
			// (at a terminal the line editor reads Ctrl-C as a key).
			return qmgr.Run(context.Background(), qmgr.Config{
				StateDir: c.String("state-dir"), Socket: c.String("socket"), Commands: c.StringSlice("c"),
				JSON: c.Bool("json"), HistoryFile: c.String("history-file"),
				Options: qmgr.Options{Abort: c.Bool("a"), Echo: c.Bool("e"), NoExec: c.Bool("n"), Quiet: c.Bool("z")},
				In:      os.Stdin, Out: c.App.Writer, Err: c.App.ErrWriter,
			})
		},
	}, manPage())
}

func nodesCommand() *cli.Command {
	return &cli.Command{
		Name:  "nodes",
		Usage: "one line per node: name, address, host name, state, protocol, upgraded, key state, last seen",
		Description: "The view for many nodes, as pbsnodes -a / -l give PBS administrators: one aligned line per\n" +
			"node, one word per column (awk, cut and sort read it), sorted by name, from one request to the\n" +
			"server. Filters combine: every one given must hold.\n\n" +
			"Examples:\n\n" +
			"    momgate-qmgr nodes                     # every node\n" +
			"    momgate-qmgr nodes -l                  # the nodes not up (down, or never enrolled)\n" +
			"    momgate-qmgr nodes --needs-sync        # missed a key rotation step\n" +
			"    momgate-qmgr nodes -l --upgraded --no-header | awk '{print $1}'",
		Flags: append(serverFlags(),
			&cli.BoolFlag{Name: "down", Aliases: []string{"l"}, Usage: "only nodes that are not up: down, or never enrolled"},
			&cli.BoolFlag{Name: "needs-sync", Usage: "only nodes whose key state is \"needs sync\""},
			&cli.BoolFlag{Name: "upgraded", Usage: "only nodes marked upgraded (legacy admission refused)"},
			&cli.BoolFlag{Name: "pending-key", Usage: "only nodes that have not yet acknowledged a new cluster key"},
			&cli.BoolFlag{Name: "no-header", Usage: "leave out the header line"},
			&cli.BoolFlag{Name: "json", Usage: "the nodes' JSON array (list node's fields) instead"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return &qmgr.UsageError{Msg: fmt.Sprintf("qmgr: nodes takes no arguments, got %q", c.Args().Slice())}
			}
			return qmgr.RunNodes(context.Background(), qmgr.NodesConfig{
				Config: qmgr.Config{StateDir: lineageString(c, "state-dir"), Socket: lineageString(c, "socket"), JSON: c.Bool("json"),
					Out: c.App.Writer, Err: c.App.ErrWriter},
				Filter:   qmgr.NodeFilter{Down: c.Bool("down"), NeedsSync: c.Bool("needs-sync"), Upgraded: c.Bool("upgraded"), PendingKey: c.Bool("pending-key")},
				NoHeader: c.Bool("no-header"),
			})
		},
	}
}
