// Package cliutil holds the command-line pieces the three momgate binaries
// share: the `config check` command, shell completion scripts, the hidden
// `man` command, environment variable names, and the error that tells main
// a failure was already logged.
package cliutil

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/config"
)

// EnvVar returns the environment variable of a flag: prefix and the flag
// name upper-cased with '-' as '_' (EnvVar("MOMGATE_SERVER_", "log-level")
// is MOMGATE_SERVER_LOG_LEVEL).
func EnvVar(prefix, flag string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ConfigFlag returns the --config flag of a run command.
func ConfigFlag(envPrefix string) *cli.StringFlag {
	return &cli.StringFlag{
		Name:      "config",
		Usage:     "read settings from the TOML `FILE`; flags and environment variables override it",
		EnvVars:   []string{EnvVar(envPrefix, "config")},
		TakesFile: true,
	}
}

// LoadConfig applies the file named by --config, if any, under the flags
// and environment already set on c.
func LoadConfig(c *cli.Context, schema *config.Schema) error {
	path := c.String("config")
	if path == "" {
		return nil
	}
	vals, err := config.Load(path, schema)
	if err != nil {
		return err
	}
	return config.Apply(c, vals)
}

// ConfigCommand returns `config check FILE`, which validates a file against
// the schema that schema builds, prints every problem with its line and
// fails, or prints "ok".
func ConfigCommand(binary string, schema func() (*config.Schema, error)) *cli.Command {
	return &cli.Command{
		Name:            "config",
		Usage:           "work with configuration files",
		HideHelpCommand: true,
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "validate a configuration file: print every problem with its line, or ok",
			ArgsUsage: "FILE",
			Description: "Checks the TOML file as `" + binary + " run --config FILE` would read it: syntax, unknown keys\n" +
				"(every key is the long name of a run flag), value types, addresses, durations, paths and\n" +
				"log settings. Each problem is printed on standard error as FILE:LINE: KEY: MESSAGE and\n" +
				"the exit status is 1; a valid file prints \"ok\" and exits 0.\n\n" +
				"Example:\n\n    " + binary + " config check /etc/momgate/" + strings.TrimPrefix(binary, "momgate-") + ".toml",
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return fmt.Errorf("config check needs exactly one FILE")
				}
				s, err := schema()
				if err != nil {
					return err
				}
				_, err = config.Load(c.Args().First(), s)
				var ps *config.Problems
				if errors.As(err, &ps) {
					for _, l := range ps.Lines() {
						fmt.Fprintln(c.App.ErrWriter, l)
					}
					return fmt.Errorf("%s: %d problem(s)", ps.File, len(ps.List))
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, "ok")
				return nil
			},
		}},
	}
}

// Logged marks err as already written to the daemon's log: main prints
// nothing more, so a JSON log stays pure JSON.
func Logged(err error) error { return &loggedError{err} }

type loggedError struct{ error }

func (e *loggedError) Unwrap() error { return e.error }

// Status makes main exit with code, printing nothing: the command has
// written what it had to say.
func Status(code int) error { return &statusError{code: code} }

// WithStatus makes err exit with status code instead of 1 (Exit).
func WithStatus(code int, err error) error { return &statusError{err: err, code: code} }

// statusError is an exit status, with the error to print (none for
// Status).
type statusError struct {
	err  error
	code int
}

func (e *statusError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *statusError) Unwrap() error { return e.err }

// Exit is main's error handling: nothing on success; a logged error, or
// a bare Status, exits silently; any other error is printed as "binary:
// error". The status is the one Status or WithStatus gave, else 1. It
// returns the exit code.
func Exit(binary string, err error, stderr func(string)) int {
	if err == nil {
		return 0
	}
	code := 1
	var se *statusError
	if errors.As(err, &se) {
		code = se.code
		if se.err == nil {
			return code
		}
	}
	var le *loggedError
	if !errors.As(err, &le) {
		stderr(binary + ": " + err.Error())
	}
	return code
}

// isLogged reports whether err was already written to the daemon's log.
func isLogged(err error) bool {
	var le *loggedError
	return errors.As(err, &le)
}
