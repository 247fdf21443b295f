// Command momgate-mom is the momgate MOM daemon and its local admin client.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/cliutil"
	"github.com/momgate/momgate/internal/config"
	"github.com/momgate/momgate/internal/metrics"
	"github.com/momgate/momgate/internal/momcli"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/mom"
	"github.com/momgate/momgate/statecheck"
)

const (
	binary    = "momgate-mom"
	envPrefix = "MOMGATE_MOM_"
	// exitDeleted is the exit status of a MOM whose node was deleted
	// (mom.ErrDeleted); the shipped unit does not restart it
	// (RestartPreventExitStatus=4).
	exitDeleted = 4
)

func main() {
	err := app(startMom).Run(os.Args)
	os.Exit(cliutil.Exit(binary, err, func(s string) { fmt.Fprintln(os.Stderr, s) }))
}

// startMom is the real daemon; tests substitute a recorder.
func startMom(ctx context.Context, cfg mom.Config) error {
	m, err := mom.New(cfg)
	if err != nil {
		return err
	}
	err = m.Run(ctx)
	if errors.Is(err, mom.ErrDeleted) {
		// The MOM logged why and what to do: no second line.
		return cliutil.WithStatus(exitDeleted, cliutil.Logged(err))
	}
	return err
}

func stateDirFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name: "state-dir", Usage: "MOM state `DIR` (identity, keyring, marks, audit log, admin socket)",
		EnvVars: []string{cliutil.EnvVar(envPrefix, "state-dir")}, TakesFile: true,
	}
}

func jsonFlag() *cli.BoolFlag {
	return &cli.BoolFlag{Name: "json", Usage: "machine-readable JSON output"}
}

// runFlags returns fresh flags of the run command (urfave/cli keeps "set
// from the environment" inside a flag). Every flag but --config is also a
// key of the configuration file.
func runFlags() []cli.Flag {
	env := func(name string, old ...string) []string {
		return append([]string{cliutil.EnvVar(envPrefix, name)}, old...)
	}
	flags := []cli.Flag{
		cliutil.ConfigFlag(envPrefix),
		stateDirFlag(),
		&cli.StringFlag{Name: "server", Value: "127.0.0.1:15001", EnvVars: env("server", "MOMGATE_SERVER"),
			Usage: "server control address `HOST[:PORT][,...]`: the server's --listen (port 15001 if left out), or a comma-separated list of every member of a server group, tried in order; a follower's redirect is followed only within the list (docs/HA.md)"},
		&cli.StringFlag{Name: "listen", Usage: "IM listen `IP:PORT`; the IP is this node's own address, the Mom= of create node (required)", EnvVars: env("listen")},
		&cli.StringFlag{Name: "enroll", Usage: "one-time enrollment `TOKEN` from create node (first start only; ignored once enrolled)", EnvVars: env("enroll", "MOMGATE_ENROLL_TOKEN")},
		&cli.DurationFlag{Name: "heartbeat", Value: mom.DefaultHeartbeat, Usage: "interval of heartbeat PINGs to the server", EnvVars: env("heartbeat")},
		&cli.DurationFlag{Name: "freshness", Value: mom.DefaultFreshness, Usage: "first-contact freshness window for sister PINGs (0 disables)", EnvVars: env("freshness")},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log and audit `FORMAT`: text or json", EnvVars: env("log-format")},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log `LEVEL`: debug, info, warn, error", EnvVars: env("log-level")},
		&cli.StringFlag{Name: "audit-log", Usage: "audit log `FILE`, one line per admission attempt (\"-\" for stderr; default STATE_DIR/audit.log); reopened on SIGHUP", EnvVars: env("audit-log"), TakesFile: true},
		&cli.StringFlag{Name: "metrics-listen", Usage: "serve Prometheus metrics at http://`IP:PORT`/metrics, and /healthz and /readyz (loopback only unless --metrics-allow-remote; default off)", EnvVars: env("metrics-listen")},
		&cli.BoolFlag{Name: "metrics-allow-remote", Usage: "allow a --metrics-listen address that is not loopback", EnvVars: env("metrics-allow-remote")},
		&cli.StringFlag{Name: "protocol", Value: mom.ProtocolFollow, EnvVars: env("protocol"),
			Usage: "what the MOM speaks: legacy (address list, v1), compat (both), ping (PING only, v2), or follow (the server's mode)"},
		&cli.StringFlag{Name: "pbs-socket", Usage: "answer the OpenPBS plugin libauth_momgate.so on this Unix `SOCKET` (its default: /run/momgate/pbs.sock; docs/OPENPBS.md); default off", EnvVars: env("pbs-socket"), TakesFile: true},
	}
	return append(flags, cliutil.LimitFlags(envPrefix)...)
}

// listenFlag is the required run flag --listen, for config.Require.
func listenFlag() cli.Flag { return runFlags()[3] }

// schema returns the config file schema; allowRemote is the effective
// --metrics-allow-remote from flags or environment.
func schema(allowRemote bool) (*config.Schema, error) {
	checks := map[string]config.Check{
		"state-dir": config.AbsPath,
		"server": func(v string, _ config.Values) error {
			_, err := mom.ParseServers(v)
			return err
		},
		"listen": config.NodeAddr,
		"enroll": func(v string, _ config.Values) error {
			if _, err := keys.ParseToken(v); err != nil {
				return fmt.Errorf("bad enrollment token: %w", err)
			}
			return nil
		},
		"heartbeat":  config.PositiveDuration,
		"freshness":  config.NonNegativeDuration,
		"log-format": config.LogFormat,
		"log-level":  config.LogLevel,
		"audit-log":  config.AuditPath,
		"metrics-listen": func(v string, f config.Values) error {
			return metrics.CheckListen(v, allowRemote || f.Bool("metrics-allow-remote"))
		},
		"protocol": func(v string, _ config.Values) error {
			_, err := mom.ParseProtocol(v)
			return err
		},
	}
	for k, v := range cliutil.LimitChecks() {
		checks[k] = v
	}
	s, err := config.FromFlags(runFlags(), []string{"config"}, checks)
	if err != nil {
		return nil, err
	}
	return s.WithLists("server") // server = ["s1:15001", "s2:15001"], or one string
}

const description = `A MOM runs on every compute node. It enrolls once with a one-time token from
momgate-qmgr -c "create node NAME Mom=HOST", keeps a control connection to the server (heartbeat PINGs,
key updates, deny lists), and admits an inter-MOM (IM) connection from a sister only after a PING swap
under the cluster key that names the connection's source address. Every admission attempt, accepted or
rejected, goes to the audit log.

peers, status and ping talk to a running MOM through its admin socket STATE_DIR/admin.sock.

Settings of run come from, first found wins: the command-line flag, its environment variable
(MOMGATE_MOM_<FLAG>, e.g. MOMGATE_MOM_LISTEN), the --config file, the default. The file is TOML with one
key per run flag, named as the long flag; check one with "momgate-mom config check FILE".

Server groups: --server takes the control addresses of every member, comma-separated (in the file,
server = ["10.0.0.1:15001", "10.0.0.2:15001"]; in the environment, MOMGATE_MOM_SERVER with commas). The MOM
stays on the server it reached; when that connection fails it moves to the next member within seconds
(jittered backoff, doubling per round of the list, capped), and follows a follower's NotLeader redirect only
to a member of its own list. Every member must prove the group identity the enrollment pinned. Sisters keep
admitting each other by PING whether or not any server is up.

Examples:

    momgate-mom run --config /etc/momgate/mom.toml --enroll "$TOKEN"    # first start
    momgate-mom run --state-dir /var/lib/momgate/mom --server 10.0.0.1:15001 --listen 10.0.1.7:15003
    momgate-mom run --state-dir /var/lib/momgate/mom --server 10.0.0.1,10.0.0.2,10.0.0.3 --listen 10.0.1.7:15003
    momgate-mom status --state-dir /var/lib/momgate/mom
    momgate-mom ping --state-dir /var/lib/momgate/mom 10.0.1.8:15003
    momgate-mom config check /etc/momgate/mom.toml

Signals: SIGTERM and SIGINT stop the MOM cleanly; SIGHUP reopens the audit log file. See
docs/DEPLOYMENT.md.`

func app(start func(context.Context, mom.Config) error) *cli.App {
	return cliutil.WithManPage(&cli.App{
		Name:  binary,
		Usage: "momgate MOM: admits sister MOMs by PING",
		UsageText: "momgate-mom run [--config FILE] [--state-dir DIR] [--server HOST[:PORT][,HOST[:PORT]...]] [--listen IP:PORT] [--enroll TOKEN] [options]\n" +
			"momgate-mom peers|status [--json] --state-dir DIR\n" +
			"momgate-mom ping [--json] --state-dir DIR IP:PORT\n" +
			"momgate-mom job start|list|stop --state-dir DIR ...\n" +
			"momgate-mom state check|restored --state-dir DIR\n" +
			"momgate-mom config check FILE\n" +
			"momgate-mom completion bash|zsh|fish\n" +
			"momgate-mom man",
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			{
				Name:      "run",
				Usage:     "run the MOM daemon until SIGINT or SIGTERM",
				ArgsUsage: " ",
				Description: "Listens for sister IM connections on --listen, keeps the control connection to a server of\n" +
					"--server (moving along the list when it fails) and\n" +
					"serves the admin socket and, with --metrics-listen, Prometheus metrics and the health checks\n" +
					"/healthz (alive) and /readyz (listening and holding a cluster key). The first start needs\n" +
					"--enroll TOKEN; later starts use the enrollment stored in the state directory. It refuses a\n" +
					"state directory or state file that group or others can reach, with the chmod that fixes it.\n" +
					"Every flag is also a key of the --config file.\n\n" +
					"Example:\n\n    momgate-mom run --config /etc/momgate/mom.toml --log-format json",
				Flags:  append(runFlags(), cliutil.TestFlags()...),
				Action: runAction(start),
			},
			{
				Name:      "peers",
				Usage:     "show the admitted-peers table of the running MOM",
				ArgsUsage: " ",
				Description: "One row per sister address admitted by PING: node name (asked of the server once per\n" +
					"sister; - if it could not be asked), node id, key id, direction (in: the sister connected;\n" +
					"out: this MOM did), admissions, first and last time.\n\n" +
					"Example:\n\n    momgate-mom peers --json --state-dir /var/lib/momgate/mom",
				Flags: []cli.Flag{stateDirFlag(), jsonFlag()},
				Action: func(c *cli.Context) error {
					if err := config.Require(c, stateDirFlag()); err != nil {
						return err
					}
					return momcli.PrintPeers(c.Context, c.String("state-dir"), c.App.Writer, c.Bool("json"))
				},
			},
			{
				Name:        "status",
				Usage:       "show the running MOM's identity, server connection, keys and rejection counters",
				ArgsUsage:   " ",
				Description: "Example:\n\n    momgate-mom status --state-dir /var/lib/momgate/mom",
				Flags:       []cli.Flag{stateDirFlag(), jsonFlag()},
				Action: func(c *cli.Context) error {
					if err := config.Require(c, stateDirFlag()); err != nil {
						return err
					}
					return momcli.PrintStatus(c.Context, c.String("state-dir"), c.App.Writer, c.Bool("json"))
				},
			},
			{
				Name:  "key",
				Usage: "manual key distribution: import a key file, activate a key",
				Description: "With `set server key_distribution=manual` the server pushes no key: export the new key with\n" +
					"momgate-qmgr -c \"export key ID file=PATH\", copy the file (mode 0400) to each node over a secure\n" +
					"channel, import it there, then run momgate-qmgr -c \"activate key ID\". See docs/KEYS.md.",
				Subcommands: []*cli.Command{
					{
						Name:      "import",
						Usage:     "store a key file as this MOM's next cluster key (refuses a file readable by group or others)",
						ArgsUsage: "FILE",
						Description: "FILE is a key written by momgate-qmgr -c \"export key ID file=PATH\"; it must be readable by\n" +
							"its owner only. The key becomes this MOM's next key: through the running MOM, which tells the\n" +
							"server, or in STATE_DIR/keyring.json if the MOM is not running.\n\n" +
							"Example:\n\n    momgate-mom key import --state-dir /var/lib/momgate/mom /root/momgate-7d3e11a0.key",
						Flags: []cli.Flag{stateDirFlag(), jsonFlag()},
						Action: func(c *cli.Context) error {
							if c.NArg() != 1 {
								return fmt.Errorf("key import needs exactly one key FILE")
							}
							if err := config.Require(c, stateDirFlag()); err != nil {
								return err
							}
							return momcli.ImportKey(c.Context, c.String("state-dir"), c.Args().First(), c.App.Writer, c.Bool("json"))
						},
					},
					{
						Name:        "activate",
						Usage:       "seal with key ID from now on on this node (for a node the server cannot reach; normally use momgate-qmgr -c \"activate key ID\")",
						ArgsUsage:   "ID",
						Description: "Example:\n\n    momgate-mom key activate --state-dir /var/lib/momgate/mom 7d3e11a0",
						Flags:       []cli.Flag{stateDirFlag(), jsonFlag()},
						Action: func(c *cli.Context) error {
							if c.NArg() != 1 {
								return fmt.Errorf("key activate needs exactly one key ID (8 hex digits)")
							}
							if err := config.Require(c, stateDirFlag()); err != nil {
								return err
							}
							return momcli.ActivateKey(c.Context, c.String("state-dir"), c.Args().First(), c.App.Writer, c.Bool("json"))
						},
					},
				},
			},
			{
				Name:      "ping",
				Usage:     "ask the running MOM to open an IM connection to a sister and run the PING swap",
				ArgsUsage: "IP:PORT",
				Description: "Reports whether the sister admitted this MOM and this MOM the sister, the sister's node\n" +
					"name and id, and the round trip.\n" +
					"Exit status 1 when the swap fails.\n\n" +
					"Example:\n\n    momgate-mom ping --state-dir /var/lib/momgate/mom 10.0.1.8:15003",
				Flags: []cli.Flag{stateDirFlag(), jsonFlag()},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return fmt.Errorf("ping needs exactly one sister address IP:PORT")
					}
					if err := config.Require(c, stateDirFlag()); err != nil {
						return err
					}
					return momcli.PrintPing(c.Context, c.String("state-dir"), c.Args().First(), c.App.Writer, c.Bool("json"))
				},
			},
			jobCommand(),
			cliutil.StateCommand(binary, statecheck.RoleMom, func() cli.Flag { return stateDirFlag() }),
			cliutil.ConfigCommand(binary, func() (*config.Schema, error) { return schema(false) }),
			cliutil.CompletionCommand(),
		},
	}, manPage)
}

func runAction(start func(context.Context, mom.Config) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		spec := cliutil.RunSpec{
			Name:     "MOM",
			Schema:   func() (*config.Schema, error) { return schema(c.Bool("metrics-allow-remote")) },
			Required: []cli.Flag{stateDirFlag(), listenFlag()},
			Check: func(c *cli.Context) error {
				if _, err := mom.ParseServers(c.String("server")); err != nil {
					return fmt.Errorf("--server %q: %w", c.String("server"), err)
				}
				if err := os.MkdirAll(c.String("state-dir"), 0o700); err != nil {
					return fmt.Errorf("create state dir: %w", err)
				}
				return nil
			},
		}
		return cliutil.RunDaemon(c, spec, func(ctx context.Context, d cliutil.Daemon) error {
			return start(ctx, mom.Config{
				StateDir: c.String("state-dir"), Server: c.String("server"), Listen: c.String("listen"),
				Enroll: c.String("enroll"), Heartbeat: c.Duration("heartbeat"), Freshness: c.Duration("freshness"),
				Log: d.Log, Audit: d.Audit, Protocol: c.String("protocol"),
				MetricsListen: c.String("metrics-listen"), MetricsAllowRemote: c.Bool("metrics-allow-remote"),
				SourceLimits: d.Limits.Limits, HandshakeTimeout: d.Limits.Handshake, Now: d.Limits.Now,
				CrashAt: d.CrashAt, PBSSocket: c.String("pbs-socket"),
				SessionLimits: d.Limits.Sessions, WithoutSessions: d.Limits.WithoutSessions,
			})
		})
	}
}

func jobNameFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "name", Usage: "job `NAME`", Required: true}
}

// jobCommand is the job workload: a mother superior joins sisters and polls
// them over admitted IM connections, so a migration is measured against
// real inter-MOM traffic.
func jobCommand() *cli.Command {
	noArgs := func(c *cli.Context) error {
		if c.NArg() != 0 {
			return fmt.Errorf("%s takes no arguments, got %q", c.Command.FullName(), c.Args().Slice())
		}
		return config.Require(c, stateDirFlag())
	}
	return &cli.Command{
		Name:  "job",
		Usage: "run, list and stop test jobs on the running MOM (it is their mother superior)",
		Description: "A job joins its sisters (IM join) and polls each every interval over an admitted IM connection\n" +
			"(PING or, in legacy and compat modes, the address list), reconnecting and re-admitting a sister\n" +
			"whose MOM restarted. A sister unreachable for longer than the retry budget is a disruption.\n" +
			"Jobs persist in STATE_DIR/jobs.json and resume when the MOM restarts.\n\n" +
			"Example:\n\n    momgate-mom job start --state-dir /var/lib/momgate/mom --name j1 --sisters n2,n3 --interval 100ms",
		Subcommands: []*cli.Command{
			{
				Name:      "start",
				Usage:     "join the sisters (IM join) and poll each of them every interval",
				ArgsUsage: " ",
				Flags: []cli.Flag{stateDirFlag(), jobNameFlag(), jsonFlag(),
					&cli.StringFlag{Name: "sisters", Usage: "sister node `NAMES`, comma-separated (e.g. n2,n3); each is looked up first, and a name the server does not know refuses the job", Required: true},
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
					a := admin.JobStartArgs{Name: c.String("name"), Sisters: sisters,
						Interval: c.Duration("interval").String(), Budget: c.Duration("budget").String()}
					return momcli.PrintJobStart(c.Context, c.String("state-dir"), a, c.App.Writer, c.Bool("json"))
				},
			},
			{
				Name:      "list",
				Usage:     "show each job's sisters: polls ok and failed, re-admissions, disruptions",
				ArgsUsage: " ",
				Flags:     []cli.Flag{stateDirFlag(), jsonFlag()},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return momcli.PrintJobs(c.Context, c.String("state-dir"), c.App.Writer, c.Bool("json"))
				},
			},
			{
				Name:      "stop",
				Usage:     "stop a job and print its final counters",
				ArgsUsage: " ",
				Flags:     []cli.Flag{stateDirFlag(), jobNameFlag(), jsonFlag()},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return momcli.PrintJobStop(c.Context, c.String("state-dir"), c.String("name"), c.App.Writer, c.Bool("json"))
				},
			},
		},
	}
}
