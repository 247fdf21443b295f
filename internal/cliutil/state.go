package cliutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/config"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/internal/statelock"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/statecheck"
)

// Exit statuses of `state check`.
const (
	StateStart   = 0 // nothing lost
	StateRefuse  = 1 // the daemon would refuse to start
	StateRecover = 2 // the daemon would recover, fail-closed
)

// StateCommand is `state check` and `state restored` of the daemon of
// role (docs/DEPLOYMENT.md section 7); stateDir returns a fresh
// --state-dir flag.
func StateCommand(binary string, role statecheck.Role, stateDir func() cli.Flag) *cli.Command {
	return &cli.Command{
		Name:            "state",
		Usage:           "check a state directory, or declare it restored from a backup",
		HideHelpCommand: true,
		Subcommands: []*cli.Command{
			{
				Name:      "check",
				Usage:     "say what a start would do with the state directory: start, recover (what was lost) or refuse (and the recovery)",
				ArgsUsage: " ",
				Description: "Inspects every state file as a start of the daemon does, without starting it, taking its lock\n" +
					"or writing a byte. Exit status 0: nothing lost; 2: the daemon recovers, fail-closed, and says\n" +
					"what was lost; 1: it refuses to start, and the output names each file, what was lost and the\n" +
					"recovery (docs/SECURITY.md section 7).\n\nExample:\n\n    " + binary + " state check --state-dir DIR",
				Flags: []cli.Flag{stateDir()},
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return fmt.Errorf("state check takes no arguments, got %q", c.Args().Slice())
					}
					if err := config.Require(c, stateDir()); err != nil {
						return err
					}
					return Status(CheckState(c.App.Writer, c.String("state-dir"), role))
				},
			},
			{
				Name:      "restored",
				Usage:     "declare the state directory restored from a backup: its replay marks are treated as lost at the next start",
				ArgsUsage: " ",
				Description: "A backup is older than the state it replaces, so its replay marks are too low: PINGs captured\n" +
					"since the backup would be admitted again. After restoring the directory whole, and before\n" +
					"starting the daemon, run this: the next start recovers the marks with a floor (docs/SECURITY.md\n" +
					"section 7.2) and clears the mark. It refuses a directory a running daemon holds.\n\n" +
					"Example:\n\n    " + binary + " state restored --state-dir DIR",
				Flags: []cli.Flag{stateDir()},
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return fmt.Errorf("state restored takes no arguments, got %q", c.Args().Slice())
					}
					if err := config.Require(c, stateDir()); err != nil {
						return err
					}
					dir := c.String("state-dir")
					if err := MarkRestored(dir); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "%s marked restored: the next start treats its replay marks as lost and recovers them with a floor\n", dir)
					return nil
				},
			},
		},
	}
}

// CheckState prints what a start of the daemon of role would do with dir
// and returns the exit status (StateStart, StateRecover, StateRefuse).
func CheckState(w io.Writer, dir string, role statecheck.Role) int {
	// What a start refuses before it reads a state file, first as the
	// start does: a directory others can reach (whichever user runs it).
	// The owner is only noted below: root checks the directory of a
	// daemon that runs as its own user.
	if err := statefile.CheckStateDirModes(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(w, "refuse: %v\n", err)
		return StateRefuse
	}
	// Then the lock file and the admin socket, which the start opens
	// before the state: something planted there, or a daemon running on
	// the directory, refuses it.
	for _, check := range []func() error{
		func() error { return statelock.Check(dir) },
		func() error { return admin.CheckSocketPath(admin.SocketPath(dir)) },
	} {
		if err := check(); err != nil {
			fmt.Fprintf(w, "refuse: %v\n", err)
			return StateRefuse
		}
	}
	st, err := daemon.CheckState(dir, role)
	if err != nil { // statecheck.ErrStateLost names each file; or unreadable, or another role's
		fmt.Fprintf(w, "refuse: %v\n", err)
		return StateRefuse
	}
	recovered, upgraded := st.Verdict.Lines()
	// A server directory with no state at all.
	if fi, err := os.Lstat(filepath.Join(dir, "raft")); role == statecheck.RoleServer && err == nil && !fi.IsDir() {
		fmt.Fprintf(w, "refuse: %s: raft is not a directory (%s): a single server refuses a directory with a raft entry, "+
			"and a group member's raft/ is a directory; remove it\n", dir, fi.Mode().Type())
		return StateRefuse
	}
	if fi, err := os.Lstat(filepath.Join(dir, "raft")); role == statecheck.RoleServer && err == nil && fi.IsDir() {
		fmt.Fprintf(w, "note: %s holds raft/: a group member's directory, which starts only with --replication-listen and its --member-name\n", dir)
	}
	if role == statecheck.RoleServer && st.Absent("state.json") && st.Absent("raft") {
		// Whatever else would be recovered: the start stops here.
		fmt.Fprintf(w, "refuse: %s: not initialized: it holds no server state (momgate-server init, join or restore)\n", dir)
		return StateRefuse
	}
	if err := statefile.CheckStateDir(dir); errors.Is(err, statefile.ErrWrongOwner) {
		what, _, _ := strings.Cut(err.Error(), "; fix:")
		fmt.Fprintf(w, "note: %s: only a daemon running as its owner starts on it\n", what)
	}
	for _, l := range upgraded {
		fmt.Fprintf(w, "upgrade: %s\n", l)
	}
	if len(recovered) == 0 {
		fmt.Fprintf(w, "start: %s: nothing lost\n", dir)
		return StateStart
	}
	for _, l := range recovered {
		fmt.Fprintf(w, "recover: %s\n", l)
	}
	return StateRecover
}

// MarkRestored sets the restored mark of dir's manifest, under the
// directory's lock.
func MarkRestored(dir string) error {
	lock, err := statelock.Acquire(dir)
	if err != nil {
		return err
	}
	defer lock.Release()
	return store.MarkRestored(dir)
}
