// Command momgate-mom is the momgate MOM daemon and its local admin client.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/mom"
)

func main() {
	if err := app().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "momgate-mom:", err)
		os.Exit(1)
	}
}

var (
	stateDirFlag = &cli.StringFlag{
		Name: "state-dir", Usage: "MOM state directory (identity, keyring, marks, admin socket)",
		EnvVars: []string{"MOMGATE_MOM_STATE_DIR"}, Required: true,
	}
	jsonFlag = &cli.BoolFlag{Name: "json", Usage: "machine-readable JSON output"}
)

func app() *cli.App {
	return &cli.App{
		Name:  "momgate-mom",
		Usage: "momgate MOM: admits sister MOMs by PING",
		Description: "A MOM enrolls once with a token from `momgate-qmgr -c \"create node NAME Mom=ADDR\"`,\n" +
			"keeps a control connection to the server, and admits an inter-MOM connection only after a\n" +
			"PING swap under the cluster key. peers, status and ping talk to a running MOM's admin socket.",
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			{
				Name:      "run",
				Usage:     "run the MOM daemon until SIGINT or SIGTERM",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					stateDirFlag,
					&cli.StringFlag{Name: "server", Value: "127.0.0.1:15001", Usage: "server control address HOST:PORT", EnvVars: []string{"MOMGATE_SERVER"}},
					&cli.StringFlag{Name: "listen", Usage: "IM listen address IP:PORT; the IP is this node's address (the Mom= of create node)", Required: true, EnvVars: []string{"MOMGATE_MOM_LISTEN"}},
					&cli.StringFlag{Name: "enroll", Usage: "one-time enrollment token (first start only)", EnvVars: []string{"MOMGATE_ENROLL_TOKEN"}},
					&cli.DurationFlag{Name: "heartbeat", Value: mom.DefaultHeartbeat, Usage: "interval of heartbeat PINGs to the server"},
					&cli.DurationFlag{Name: "freshness", Value: mom.DefaultFreshness, Usage: "first-contact freshness window for sister PINGs (0 disables)"},
					&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format: text or json"},
					&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log level: debug, info, warn, error"},
					&cli.StringFlag{Name: "audit-log", Usage: "audit log file (\"-\" for stderr; default STATE_DIR/audit.log)"},
					&cli.StringFlag{Name: "protocol", Value: mom.ProtocolFollow, EnvVars: []string{"MOMGATE_MOM_PROTOCOL"},
						Usage: "what the MOM speaks: legacy (address list, v1), compat (both), ping (v2 only), or follow (the server's mode)"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return fmt.Errorf("run takes no arguments, got %q", c.Args().Slice())
					}
					log, err := daemon.NewLogger(os.Stderr, c.String("log-format"), c.String("log-level"))
					if err != nil {
						return err
					}
					if err := os.MkdirAll(c.String("state-dir"), 0o700); err != nil {
						return err
					}
					auditPath := c.String("audit-log")
					if auditPath == "" {
						auditPath = filepath.Join(c.String("state-dir"), "audit.log")
					}
					auditLog, closer, err := daemon.OpenAudit(auditPath, c.String("log-format"))
					if err != nil {
						return err
					}
					defer closer.Close()
					m, err := mom.New(mom.Config{
						StateDir: c.String("state-dir"), Server: c.String("server"), Listen: c.String("listen"),
						Enroll: c.String("enroll"), Heartbeat: c.Duration("heartbeat"), Freshness: c.Duration("freshness"),
						Protocol: c.String("protocol"), Log: log, Audit: auditLog,
					})
					if err != nil {
						return err
					}
					ctx, stop := daemon.SignalContext()
					defer stop()
					return m.Run(ctx)
				},
			},
			{
				Name:      "peers",
				Usage:     "show the admitted-peers table of the running MOM",
				ArgsUsage: " ",
				Flags:     []cli.Flag{stateDirFlag, jsonFlag},
				Action: func(c *cli.Context) error {
					return mom.PrintPeers(c.Context, c.String("state-dir"), c.App.Writer, c.Bool("json"))
				},
			},
			{
				Name:      "status",
				Usage:     "show the running MOM's identity, server connection, keys and rejection counters",
				ArgsUsage: " ",
				Flags:     []cli.Flag{stateDirFlag, jsonFlag},
				Action: func(c *cli.Context) error {
					return mom.PrintStatus(c.Context, c.String("state-dir"), c.App.Writer, c.Bool("json"))
				},
			},
			{
				Name:      "ping",
				Usage:     "ask the running MOM to open an IM connection to a sister and run the PING swap",
				ArgsUsage: "ADDR (sister IM address IP:PORT)",
				Flags:     []cli.Flag{stateDirFlag, jsonFlag},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return fmt.Errorf("ping needs exactly one sister address IP:PORT")
					}
					return mom.PrintPing(c.Context, c.String("state-dir"), c.Args().First(), c.App.Writer, c.Bool("json"))
				},
			},
			jobCommand(),
		},
	}
}

var jobNameFlag = &cli.StringFlag{Name: "name", Usage: "job name", Required: true}

func noArgs(c *cli.Context) error {
	if c.NArg() != 0 {
		return fmt.Errorf("%s takes no arguments, got %q", c.Command.FullName(), c.Args().Slice())
	}
	return nil
}

// jobCommand is the job workload: a mother superior joins sisters and polls
// them over admitted IM connections, so a migration is measured against
// real inter-MOM traffic.
func jobCommand() *cli.Command {
	return &cli.Command{
		Name:  "job",
		Usage: "run, list and stop test jobs on the running MOM (it is their mother superior)",
		Subcommands: []*cli.Command{
			{
				Name:      "start",
				Usage:     "join the sisters (IM join) and poll each of them every interval",
				ArgsUsage: " ",
				Flags: []cli.Flag{stateDirFlag, jobNameFlag, jsonFlag,
					&cli.StringFlag{Name: "sisters", Usage: "sister node names, comma-separated (e.g. n2,n3)", Required: true},
					&cli.DurationFlag{Name: "interval", Value: mom.DefaultJobInterval, Usage: "poll interval per sister"},
					&cli.DurationFlag{Name: "budget", Value: mom.DefaultJobBudget, Usage: "retry budget: a sister unreachable longer than this is a disruption"},
				},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					var sisters []string
					for _, s := range strings.Split(c.String("sisters"), ",") {
						if s = strings.TrimSpace(s); s != "" {
							sisters = append(sisters, s)
						}
					}
					a := mom.JobStartArgs{Name: c.String("name"), Sisters: sisters,
						Interval: c.Duration("interval").String(), Budget: c.Duration("budget").String()}
					return mom.PrintJobStart(c.Context, c.String("state-dir"), a, c.App.Writer, c.Bool("json"))
				},
			},
			{
				Name:      "list",
				Usage:     "show each job's sisters: polls ok and failed, re-admissions, disruptions",
				ArgsUsage: " ",
				Flags:     []cli.Flag{stateDirFlag, jsonFlag},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return mom.PrintJobs(c.Context, c.String("state-dir"), c.App.Writer, c.Bool("json"))
				},
			},
			{
				Name:      "stop",
				Usage:     "stop a job and print its final counters",
				ArgsUsage: " ",
				Flags:     []cli.Flag{stateDirFlag, jobNameFlag, jsonFlag},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return mom.PrintJobStop(c.Context, c.String("state-dir"), c.String("name"), c.App.Writer, c.Bool("json"))
				},
			},
		},
	}
}
