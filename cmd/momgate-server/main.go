// Command momgate-server is the momgate server daemon.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/server"
)

func main() {
	if err := app().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "momgate-server:", err)
		os.Exit(1)
	}
}

var stateDirFlag = &cli.StringFlag{
	Name: "state-dir", Usage: "server state directory (identity, keys, nodes, admin socket)",
	EnvVars: []string{"MOMGATE_STATE_DIR"}, Required: true,
}

func app() *cli.App {
	return &cli.App{
		Name:  "momgate-server",
		Usage: "momgate server: node registry, enrollment, cluster keys, PING responder",
		Description: "The server admits MOMs that enroll with a one-time token (momgate-qmgr -c \"create node ...\"),\n" +
			"hands each one the cluster key wrapped for its own identity key, and answers their heartbeat PINGs.\n" +
			"Administer it with momgate-qmgr --state-dir DIR.",
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			{
				Name:      "init",
				Usage:     "create a new state directory: server identity and first cluster key",
				ArgsUsage: " ",
				Flags:     []cli.Flag{stateDirFlag},
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return fmt.Errorf("init takes no arguments, got %q", c.Args().Slice())
					}
					fp, err := server.Init(c.String("state-dir"), nil, time.Now())
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "initialized %s\nserver fingerprint %s\n", c.String("state-dir"), fp)
					return nil
				},
			},
			{
				Name:      "run",
				Usage:     "run the server daemon until SIGINT or SIGTERM",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					stateDirFlag,
					&cli.StringFlag{Name: "listen", Value: "127.0.0.1:15001", Usage: "TCP address for MOM control connections", EnvVars: []string{"MOMGATE_LISTEN"}},
					&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format: text or json"},
					&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log level: debug, info, warn, error"},
					&cli.StringFlag{Name: "audit-log", Usage: "audit log file (\"-\" for stderr; default STATE_DIR/audit.log)"},
					&cli.DurationFlag{Name: "key-timeout", Value: server.DefaultKeyTimeout, Usage: "how long a key rotation waits for connected MOMs to acknowledge the new key before activating it anyway"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return fmt.Errorf("run takes no arguments, got %q", c.Args().Slice())
					}
					if c.Duration("key-timeout") <= 0 {
						return fmt.Errorf("--key-timeout %s: want a positive duration", c.Duration("key-timeout"))
					}
					log, err := daemon.NewLogger(os.Stderr, c.String("log-format"), c.String("log-level"))
					if err != nil {
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
					srv, err := server.New(server.Config{StateDir: c.String("state-dir"), Listen: c.String("listen"), Log: log, Audit: auditLog,
						KeyTimeout: c.Duration("key-timeout")})
					if err != nil {
						return err
					}
					ctx, stop := daemon.SignalContext()
					defer stop()
					return srv.Run(ctx)
				},
			},
		},
	}
}
