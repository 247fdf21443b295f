// Command momgate-server is the momgate server daemon.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/group"
	"github.com/momgate/momgate/internal/cliutil"
	"github.com/momgate/momgate/internal/config"
	"github.com/momgate/momgate/internal/member"
	"github.com/momgate/momgate/internal/metrics"
	"github.com/momgate/momgate/server"
	"github.com/momgate/momgate/statecheck"
)

const (
	binary    = "momgate-server"
	envPrefix = "MOMGATE_SERVER_"
)

func main() {
	err := app(startServer).Run(os.Args)
	os.Exit(cliutil.Exit(binary, err, func(s string) { fmt.Fprintln(os.Stderr, s) }))
}

// startServer is the real daemon; tests substitute a recorder.
func startServer(ctx context.Context, cfg server.Config) error {
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

func stateDirFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name: "state-dir", Usage: "server state `DIR` (identity, keys, nodes, audit log, admin socket)",
		EnvVars: []string{cliutil.EnvVar(envPrefix, "state-dir"), "MOMGATE_STATE_DIR"}, TakesFile: true,
	}
}

// runFlags returns fresh flags of the run command: urfave/cli keeps
// "set from the environment" inside a flag, so each App gets its own. Every
// flag but --config is also a key of the configuration file.
func runFlags() []cli.Flag {
	env := func(name string, old ...string) []string {
		return append([]string{cliutil.EnvVar(envPrefix, name)}, old...)
	}
	flags := []cli.Flag{
		cliutil.ConfigFlag(envPrefix),
		stateDirFlag(),
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:15001", Usage: "TCP `ADDR`ESS (HOST:PORT) for MOM control connections; MOMs dial it with --server", EnvVars: env("listen", "MOMGATE_LISTEN")},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log and audit `FORMAT`: text or json", EnvVars: env("log-format")},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log `LEVEL`: debug, info, warn, error", EnvVars: env("log-level")},
		&cli.StringFlag{Name: "audit-log", Usage: "audit log `FILE`, one line per admission attempt (\"-\" for stderr; default STATE_DIR/audit.log); reopened on SIGHUP", EnvVars: env("audit-log"), TakesFile: true},
		&cli.StringFlag{Name: "metrics-listen", Usage: "serve Prometheus metrics at http://`IP:PORT`/metrics, and /healthz and /readyz (loopback only unless --metrics-allow-remote; default off)", EnvVars: env("metrics-listen")},
		&cli.BoolFlag{Name: "metrics-allow-remote", Usage: "allow a --metrics-listen address that is not loopback", EnvVars: env("metrics-allow-remote")},
		&cli.StringFlag{Name: "pbs-socket", Usage: "answer the OpenPBS plugin libauth_momgate.so on this Unix `SOCKET` (its default: /run/momgate/pbs.sock; docs/OPENPBS.md); default off", EnvVars: env("pbs-socket"), TakesFile: true},
		&cli.StringFlag{Name: "pbs-host-name", Usage: "this host's `NAME` as PBS knows it, for --pbs-socket (default: the hostname)", EnvVars: env("pbs-host-name")},
		&cli.StringFlag{Name: "pbs-service-users", Value: "root", EnvVars: env("pbs-service-users"),
			Usage: "the `USERS` (comma list) whose PBS daemons may join pbs_comm, as PBS_AUTH_SERVICE_USERS, for --pbs-socket"},
		&cli.StringFlag{Name: "replication-listen", EnvVars: env("replication-listen"),
			Usage: "run as a member of a replicated server group, replicating on `IP:PORT` (docs/HA.md); a state directory of a single server is upgraded in place into a group of one member"},
		&cli.StringFlag{Name: "member-name", Value: "s1", EnvVars: env("member-name"),
			Usage: "this member's `NAME` in its server group (with --replication-listen)"},
		&cli.DurationFlag{Name: "raft-heartbeat", Value: time.Second, EnvVars: env("raft-heartbeat"),
			Usage: "the group's heartbeat and election `TIMEOUT`: a failed leader is replaced after about twice it (with --replication-listen)"},
		&cli.DurationFlag{Name: "key-timeout", Value: server.DefaultKeyTimeout, EnvVars: env("key-timeout"),
			Usage: "how long a key rotation waits for connected MOMs to acknowledge the new key before activating it anyway (docs/KEYS.md)"},
	}
	return append(flags, cliutil.LimitFlags(envPrefix)...)
}

// schema returns the config file schema; allowRemote is the effective
// --metrics-allow-remote from flags or environment.
func schema(allowRemote bool) (*config.Schema, error) {
	checks := map[string]config.Check{
		"state-dir":   config.AbsPath,
		"listen":      config.ListenAddr,
		"log-format":  config.LogFormat,
		"log-level":   config.LogLevel,
		"audit-log":   config.AuditPath,
		"key-timeout": config.PositiveDuration,
		"metrics-listen": func(v string, f config.Values) error {
			return metrics.CheckListen(v, allowRemote || f.Bool("metrics-allow-remote"))
		},
	}
	for k, v := range cliutil.LimitChecks() {
		checks[k] = v
	}
	return config.FromFlags(runFlags(), []string{"config"}, checks)
}

const description = `The server is the registry and key authority of a momgate cluster. It admits MOMs that enroll with a
one-time token (momgate-qmgr -c "create node NAME Mom=HOST"), hands each one the cluster key wrapped for
its own identity key, answers their heartbeat PINGs, and records every admission attempt in the audit
log. Administer a running server with momgate-qmgr on the same host (its admin socket is
STATE_DIR/admin.sock, owner-only).

Settings come from, first found wins: the command-line flag, its environment variable
(MOMGATE_SERVER_<FLAG>, e.g. MOMGATE_SERVER_LOG_LEVEL), the --config file, the default. The file is TOML
with one key per run flag, named as the long flag (listen = "10.0.0.1:15001"); check one with
"momgate-server config check FILE".

Examples:

    momgate-server init --state-dir /var/lib/momgate/server
    momgate-server run --config /etc/momgate/server.toml
    momgate-server run --state-dir /var/lib/momgate/server --listen 10.0.0.1:15001 \
        --log-format json --metrics-listen 127.0.0.1:9464
    momgate-server config check /etc/momgate/server.toml

Back up the whole state directory while the server is stopped. Signals: SIGTERM and SIGINT stop the
server cleanly; SIGHUP reopens the audit log file. See docs/DEPLOYMENT.md.`

func app(start func(context.Context, server.Config) error) *cli.App {
	return cliutil.WithManPage(&cli.App{
		Name:  binary,
		Usage: "momgate server: node registry, enrollment, cluster keys, PING responder",
		UsageText: "momgate-server init --state-dir DIR\n" +
			"momgate-server init --reinitialize --state-dir DIR\n" +
			"momgate-server state check|restored --state-dir DIR\n" +
			"momgate-server run [--config FILE] [--state-dir DIR] [--listen HOST:PORT] [options]\n" +
			"momgate-server join --token TOKEN --state-dir DIR --listen HOST:PORT [--force]\n" +
			"momgate-server backup --state-dir DIR --out FILE [--force]\n" +
			"momgate-server restore --from FILE --state-dir DIR [--force]\n" +
			"momgate-server config check FILE\n" +
			"momgate-server completion bash|zsh|fish\n" +
			"momgate-server man",
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			{
				Name:      "init",
				Usage:     "create a new state directory: server identity and first cluster key",
				ArgsUsage: " ",
				Description: "Creates DIR (mode 0700) with a new X25519 server identity, a first active cluster key and an\n" +
					"empty node registry, then prints the server's key fingerprint. It refuses a directory that holds\n" +
					"any state file, naming them: it never overwrites an identity or a keyring, which every enrolled\n" +
					"MOM depends on. A server that lost state is restored from its backup (docs/DEPLOYMENT.md section\n" +
					"7), not initialized again. --reinitialize starts over on purpose: it first moves every state file\n" +
					"into DIR/backup-UTCSTAMP/, then initializes; every node must then be enrolled again.\n\n" +
					"Example:\n\n    momgate-server init --state-dir /var/lib/momgate/server",
				Flags: []cli.Flag{stateDirFlag(), &cli.BoolFlag{Name: "reinitialize",
					Usage: "start over on an initialized directory: move its state files into DIR/backup-UTCSTAMP/ first (every node must be enrolled again)"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return fmt.Errorf("init takes no arguments, got %q", c.Args().Slice())
					}
					if err := config.Require(c, stateDirFlag()); err != nil {
						return err
					}
					dir := c.String("state-dir")
					if c.Bool("reinitialize") {
						fp, backup, err := server.Reinitialize(dir, nil, time.Now())
						if backup != "" {
							fmt.Fprintf(c.App.Writer, "backed up the previous state of %s in %s\n", dir, backup)
						}
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "initialized %s\nserver fingerprint %s (new: enroll every node again)\n", dir, fp)
						return nil
					}
					fp, err := server.Init(dir, nil, time.Now())
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "initialized %s\nserver fingerprint %s\n", dir, fp)
					return nil
				},
			},
			{
				Name:      "run",
				Usage:     "run the server daemon until SIGINT or SIGTERM",
				ArgsUsage: " ",
				Description: "Listens for MOM control connections on --listen, serves the admin socket in the state\n" +
					"directory and, with --metrics-listen, Prometheus metrics and the health checks /healthz (alive)\n" +
					"and /readyz (listening). It refuses a state directory or state file that group or others can\n" +
					"reach, with the chmod that fixes it. Logs go to standard error (text or JSON); the audit log is\n" +
					"its own stream. Every flag is also a key of the --config file.\n\n" +
					"Example:\n\n    momgate-server run --config /etc/momgate/server.toml --log-level debug",
				Flags:  append(runFlags(), cliutil.TestFlags()...),
				Action: runAction(start),
			},
			{
				Name:      "join",
				Usage:     "join a server group with a join token, receive its identity and state, and run as a member",
				ArgsUsage: " ",
				Description: "Redeems the one-time token that momgate-qmgr -c \"create server NAME Address=HOST:PORT\" printed on\n" +
					"the group's leader, receives the group's identity, CA and state over TLS pinned by the token, writes\n" +
					"them into --state-dir and runs as the member NAME (replicating on HOST:PORT, serving MOMs on --listen\n" +
					"when it leads). It refuses a directory that holds server state unless --force, which first moves\n" +
					"that state into DIR/backup-UTCSTAMP/. Later starts are plain runs with --replication-listen.\n\n" +
					"Example:\n\n    momgate-server join --token mgj1_... --state-dir /var/lib/momgate/server --listen 10.0.0.2:15001",
				Flags: append(append(runFlags(), cliutil.TestFlags()...),
					&cli.StringFlag{Name: "token", Usage: "the join `TOKEN` (mgj1_...)", EnvVars: []string{envPrefix + "JOIN_TOKEN"}},
					&cli.BoolFlag{Name: "force", Usage: "join on a directory that holds server state: back it up into DIR/backup-UTCSTAMP/ first"}),
				Action: joinAction(),
			},
			{
				Name:      "backup",
				Usage:     "take an online backup of the running server or group member on --state-dir into a file",
				ArgsUsage: " ",
				Description: "Asks the daemon running on DIR (its admin socket) for a consistent copy of its state at one\n" +
					"applied index: the server identity and a snapshot of the nodes, tokens, cluster keys, rotation,\n" +
					"deny list and group members, each with its SHA-256. Any member of a group answers, leader or\n" +
					"follower. The copy is checked as restore checks it, then written to FILE with mode 0600 and\n" +
					"atomically (a temporary file beside it, then linked); an existing FILE is never replaced without\n" +
					"--force. The file holds secrets (the identity and the cluster keys): keep it encrypted.\n\n" +
					"Example:\n\n    momgate-server backup --state-dir /var/lib/momgate/server --out /root/momgate-$(date +%F).backup",
				Flags: []cli.Flag{stateDirFlag(),
					&cli.StringFlag{Name: "out", Usage: "the backup `FILE` to write (mode 0600)", TakesFile: true},
					&cli.BoolFlag{Name: "force", Usage: "replace FILE if it exists"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return fmt.Errorf("backup takes no arguments, got %q", c.Args().Slice())
					}
					if err := config.Require(c, stateDirFlag()); err != nil {
						return err
					}
					if c.String("out") == "" {
						return fmt.Errorf("backup needs --out FILE")
					}
					ctx, cancel := context.WithTimeout(c.Context, 5*time.Minute)
					defer cancel()
					b, err := server.Backup(ctx, server.BackupConfig{StateDir: c.String("state-dir"), Out: c.String("out"), Force: c.Bool("force")})
					if err != nil {
						return err
					}
					from := "the server"
					if b.Member != "" {
						from = fmt.Sprintf("member %s at log index %d (members %s)", b.Member, b.Index, strings.Join(b.Members, ", "))
					}
					fmt.Fprintf(c.App.Writer, "backed up %s: %d nodes, server id %s, into %s\nsnapshot sha256 %s\n",
						from, b.Nodes, b.ServerID, c.String("out"), b.SnapshotSHA256)
					return nil
				},
			},
			{
				Name:      "restore",
				Usage:     "make a state directory of a single server from a backup file",
				ArgsUsage: " ",
				Description: "Checks the backup whole (format, checksums, every file decoded) and writes it into DIR as a\n" +
					"single server's state directory, marked restored: the same identity, so MOMs reconnect without\n" +
					"enrolling again. Start it as a single server, or with --replication-listen as the first member of\n" +
					"a new group (a new group CA), then join the others with new tokens. Writes after the backup are\n" +
					"lost. It refuses a directory that holds server state unless --force, which first moves that state\n" +
					"into DIR/backup-UTCSTAMP/. Run it with the server stopped (a running one holds the directory's lock).\n\n" +
					"Example:\n\n    momgate-server restore --from /root/momgate.backup --state-dir /var/lib/momgate/server",
				Flags: []cli.Flag{stateDirFlag(),
					&cli.StringFlag{Name: "from", Usage: "the backup `FILE` (from momgate-server backup)", TakesFile: true},
					&cli.BoolFlag{Name: "force", Usage: "restore into a directory that holds server state: back it up into DIR/backup-UTCSTAMP/ first"}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return fmt.Errorf("restore takes no arguments, got %q", c.Args().Slice())
					}
					if err := config.Require(c, stateDirFlag()); err != nil {
						return err
					}
					if c.String("from") == "" {
						return fmt.Errorf("restore needs --from FILE")
					}
					dir := c.String("state-dir")
					b, err := server.Restore(server.RestoreConfig{From: c.String("from"), StateDir: dir, Force: c.Bool("force")},
						func(bd string) { fmt.Fprintf(c.App.Writer, "backed up the previous state of %s in %s\n", dir, bd) })
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "restored %s from %s: %d nodes, server id %s, taken %s\n",
						dir, c.String("from"), b.Nodes, b.ServerID, b.Created.Format(time.RFC3339))
					return nil
				},
			},
			cliutil.StateCommand(binary, statecheck.RoleServer, func() cli.Flag { return stateDirFlag() }),
			cliutil.ConfigCommand(binary, func() (*config.Schema, error) { return schema(false) }),
			cliutil.CompletionCommand(),
		},
	}, manPage)
}

// joinAction is momgate-server join.
func joinAction() cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.String("token") == "" {
			return fmt.Errorf("join needs --token TOKEN (from create server on the group's leader)")
		}
		// A malformed token is refused before the directory or its audit
		// log is made: a refused join leaves nothing behind.
		if _, err := group.ParseJoinToken(c.String("token")); err != nil {
			return fmt.Errorf("--token: %w", err)
		}
		spec := cliutil.RunSpec{
			Name:     "server",
			Schema:   func() (*config.Schema, error) { return schema(c.Bool("metrics-allow-remote")) },
			Required: []cli.Flag{stateDirFlag()},
		}
		if dir := c.String("state-dir"); dir != "" {
			// A new member's directory: the audit log opens in it first.
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
		}
		return cliutil.RunDaemon(c, spec, func(ctx context.Context, d cliutil.Daemon) error {
			gc := groupConfig(c, serverConfig(c, d))
			gc.Member = ""
			return server.Join(ctx, server.JoinConfig{Group: gc, Token: c.String("token"), Force: c.Bool("force")}, func(b string) {
				fmt.Fprintf(c.App.Writer, "backed up the previous state of %s in %s\n", c.String("state-dir"), b)
			})
		})
	}
}

// serverConfig is the server's configuration from the run flags.
func serverConfig(c *cli.Context, d cliutil.Daemon) server.Config {
	return server.Config{
		StateDir: c.String("state-dir"), Listen: c.String("listen"), Log: d.Log, Audit: d.Audit,
		MetricsListen: c.String("metrics-listen"), MetricsAllowRemote: c.Bool("metrics-allow-remote"),
		SourceLimits: d.Limits.Limits, HandshakeTimeout: d.Limits.Handshake, Now: d.Limits.Now,
		KeyTimeout: c.Duration("key-timeout"), CrashAt: d.CrashAt, Resolve: d.Resolve,
		PBSSocket: c.String("pbs-socket"), PBSHostName: c.String("pbs-host-name"),
		PBSServiceUsers: strings.FieldsFunc(c.String("pbs-service-users"), func(r rune) bool { return r == ',' || r == ' ' }),
		SessionLimits:   d.Limits.Sessions, WithoutSessions: d.Limits.WithoutSessions,
	}
}

// groupConfig is the group member's configuration from the run flags.
func groupConfig(c *cli.Context, cfg server.Config) server.GroupConfig {
	hb := c.Duration("raft-heartbeat")
	return server.GroupConfig{Server: cfg, Member: c.String("member-name"), ReplicationListen: c.String("replication-listen"),
		Timing: member.Timing{HeartbeatTimeout: hb, ElectionTimeout: hb, LeaderLeaseTimeout: hb / 2, CommitTimeout: 5 * time.Millisecond}}
}

func runAction(start func(context.Context, server.Config) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		spec := cliutil.RunSpec{
			Name:     "server",
			Schema:   func() (*config.Schema, error) { return schema(c.Bool("metrics-allow-remote")) },
			Required: []cli.Flag{stateDirFlag()},
			Check: func(c *cli.Context) error {
				if c.Duration("key-timeout") <= 0 {
					return fmt.Errorf("--key-timeout %s: want a positive duration", c.Duration("key-timeout"))
				}
				return nil
			},
		}
		return cliutil.RunDaemon(c, spec, func(ctx context.Context, d cliutil.Daemon) error {
			cfg := serverConfig(c, d)
			if c.String("replication-listen") != "" {
				return server.RunGroup(ctx, groupConfig(c, cfg))
			}
			return start(ctx, cfg)
		})
	}
}
