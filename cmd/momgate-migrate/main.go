// Command momgate-migrate is the helper of migration/rolling-migrate.sh:
// it keeps the migration plan in a state file and reads the JSON of
// momgate-qmgr, so the script needs neither jq nor its own state logic.
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/cliutil"
	"github.com/momgate/momgate/internal/migrate"
	"github.com/momgate/momgate/migration"
)

// Exit codes.
const (
	exitUnmet = 1 // check: the condition does not hold
	exitError = 2 // bad usage, bad input, I/O failure
)

func main() {
	err := app().Run(os.Args)
	switch {
	case err == nil:
	case errors.Is(err, migrate.ErrUnmet):
		os.Exit(exitUnmet)
	default:
		fmt.Fprintln(os.Stderr, "momgate-migrate:", err)
		os.Exit(exitError)
	}
}

var stateFlag = &cli.StringFlag{Name: "state", Usage: "migration state file", Required: true}

func noArgs(c *cli.Context) error {
	if c.NArg() != 0 {
		return fmt.Errorf("%s takes no arguments, got %q", c.Command.Name, c.Args().Slice())
	}
	return nil
}

func app() *cli.App {
	return cliutil.WithManPage(&cli.App{
		Name:            "momgate-migrate",
		Usage:           "plan and track a rolling migration from the legacy protocol to PING (helper of rolling-migrate.sh)",
		HideHelpCommand: true,
		Commands: []*cli.Command{
			{
				Name:      "plan",
				Usage:     "plan (or resume) a migration or rollback from the cluster view on stdin and save it",
				ArgsUsage: " ",
				Flags: []cli.Flag{stateFlag,
					&cli.IntFlag{Name: "batch", Value: 10, Usage: "MOMs upgraded per batch"},
					&cli.IntFlag{Name: "verify-peers", Value: 2, Usage: "peers each upgraded node swaps PINGs with, both ways"},
					&cli.BoolFlag{Name: "rollback", Usage: "plan a rollback to legacy instead"},
					&cli.BoolFlag{Name: "dry-run", Usage: "print the steps, save nothing"},
				},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					view, err := migrate.ReadView(os.Stdin)
					if err != nil {
						return err
					}
					return migrate.Plan(view, migrate.PlanArgs{State: c.String("state"), Rollback: c.Bool("rollback"), DryRun: c.Bool("dry-run"),
						Options: migration.Options{BatchSize: c.Int("batch"), VerifyPeers: c.Int("verify-peers")}}, c.App.Writer)
				},
			},
			{
				Name:      "next",
				Usage:     "print the current step as shell assignments (eval them)",
				ArgsUsage: " ",
				Flags:     []cli.Flag{stateFlag},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return migrate.Next(c.String("state"), c.App.Writer)
				},
			},
			{
				Name:      "record",
				Usage:     "record that the current step begins, or its outcome: ok, or fail MESSAGE",
				ArgsUsage: "begin | ok | fail MESSAGE",
				Flags:     []cli.Flag{stateFlag},
				Action: func(c *cli.Context) error {
					switch c.Args().First() {
					case "begin":
						if c.NArg() != 1 {
							return fmt.Errorf("record begin takes no message")
						}
						return migrate.Begin(c.String("state"))
					case "ok":
						if c.NArg() != 1 {
							return fmt.Errorf("record ok takes no message")
						}
						return migrate.Record(c.String("state"), true, "")
					case "fail":
						return migrate.Record(c.String("state"), false, strings.Join(c.Args().Tail(), " "))
					}
					return fmt.Errorf("record needs begin, ok or fail MESSAGE, got %q", c.Args().Slice())
				},
			},
			{
				Name:      "check",
				Usage:     "exit 0 if the cluster view on stdin meets the condition, else print why and exit 1",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "want", Required: true, Usage: "preflight, compat, upgraded or legacy"},
					&cli.StringFlag{Name: "goal", Value: string(migration.GoalMigrate), Usage: "for preflight: migrate or rollback"},
					&cli.StringFlag{Name: "nodes", Usage: "node names, space- or comma-separated (default: every node)"},
				},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					goal := migration.Goal(c.String("goal"))
					if goal != migration.GoalMigrate && goal != migration.GoalRollback {
						return fmt.Errorf("--goal %q: want migrate or rollback", goal)
					}
					view, err := migrate.ReadView(os.Stdin)
					if err != nil {
						return err
					}
					nodes := strings.FieldsFunc(c.String("nodes"), func(r rune) bool { return r == ',' || r == ' ' })
					return migrate.Check(view, c.String("want"), goal, nodes, c.App.Writer)
				},
			},
			{
				Name:      "mode",
				Usage:     "print the server's mode from the cluster view on stdin",
				ArgsUsage: " ",
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					view, err := migrate.ReadView(os.Stdin)
					if err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, view.Mode)
					return nil
				},
			},
			{
				Name:      "status",
				Usage:     "print where the plan in the state file is",
				ArgsUsage: " ",
				Flags:     []cli.Flag{stateFlag},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return migrate.Status(c.String("state"), c.App.Writer)
				},
			},
			{
				Name:      "cost",
				Usage:     "print the push cost table: messages and bytes per node add and delete, legacy vs ping",
				ArgsUsage: " ",
				Flags:     []cli.Flag{&cli.StringFlag{Name: "n", Value: "100,1000,10000", Usage: "cluster sizes, comma-separated"}},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					var ns []int
					for _, f := range strings.Split(c.String("n"), ",") {
						n, err := strconv.Atoi(strings.TrimSpace(f))
						if err != nil || n < 2 || n > 100000 {
							return fmt.Errorf("--n: %q is not a cluster size 2..100000", f)
						}
						ns = append(ns, n)
					}
					fmt.Fprint(c.App.Writer, migration.CostTable(ns))
					return nil
				},
			},
			cliutil.CompletionCommand(),
		},
	}, manPage)
}
