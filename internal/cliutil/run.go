package cliutil

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/config"
	"github.com/momgate/momgate/internal/daemon"
)

// Daemon is what a daemon's run command has set up when the daemon
// starts: its logger, its audit log, the limit and test flags, and the
// test hooks the environment arms: the crash hook
// (daemon.CrashHookFromEnv) and the host table (daemon.HostsFromEnv).
type Daemon struct {
	Log     *logrus.Logger
	Audit   *audit.Log
	Limits  LimitSettings
	CrashAt func(step string)
	// Resolve is the test host table, nil (the system's resolver) in
	// production.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// RunSpec describes a daemon's run command for RunDaemon.
type RunSpec struct {
	Name     string // "server" or "MOM", in the log lines
	Schema   func() (*config.Schema, error)
	Required []cli.Flag               // flags that must be set, by flag, environment or file
	Check    func(*cli.Context) error // the daemon's own flag checks and preparation; nil for none
}

// RunDaemon is the body of a daemon's run command: it reads the config
// file under the flags and the environment, checks the required and the
// limit flags, opens the logger, the signal-bound context and the audit
// log (reopened on SIGHUP, default STATE_DIR/audit.log), then runs the
// daemon until the context ends. A failure of the daemon is logged (unless
// the daemon logged it itself: Logged) and returned as already logged.
func RunDaemon(c *cli.Context, spec RunSpec, run func(ctx context.Context, d Daemon) error) error {
	if c.NArg() != 0 {
		return fmt.Errorf("run takes no arguments, got %q", c.Args().Slice())
	}
	s, err := spec.Schema()
	if err != nil {
		return err
	}
	if err := LoadConfig(c, s); err != nil {
		return err
	}
	if err := config.Require(c, spec.Required...); err != nil {
		return err
	}
	d := Daemon{CrashAt: daemon.CrashHookFromEnv()}
	if d.Resolve, err = daemon.HostsFromEnv(); err != nil {
		return err
	}
	if d.Limits, err = ReadLimits(c); err != nil {
		return err
	}
	if spec.Check != nil {
		if err := spec.Check(c); err != nil {
			return err
		}
	}
	if d.Log, err = daemon.NewLogger(os.Stderr, c.String("log-format"), c.String("log-level")); err != nil {
		return err
	}
	auditPath := c.String("audit-log")
	if auditPath == "" {
		auditPath = filepath.Join(c.String("state-dir"), "audit.log")
	}
	ctx, stop := daemon.SignalContext()
	defer stop()
	var closer io.Closer
	if d.Audit, closer, err = daemon.OpenAuditFile(ctx, auditPath, c.String("log-format"), d.Log); err != nil {
		return err
	}
	defer closer.Close()
	if err := run(ctx, d); err != nil {
		if isLogged(err) { // the daemon said why, in a line of its own
			return err
		}
		d.Log.WithError(err).Error(spec.Name + " exited with an error")
		return Logged(err)
	}
	d.Log.Info(spec.Name + " stopped")
	return nil
}
