package qmgr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/momgate/momgate/internal/admin"
)

const (
	// maxLine is the longest directive line read from a script or prompt.
	maxLine = 1 << 20
	// maxScriptLines bounds a script read from stdin.
	maxScriptLines = 1 << 20
	// Prompt is the interactive prompt, as in PBS qmgr.
	Prompt = "Qmgr: "
)

// Options are PBS qmgr's switches.
type Options struct {
	// Abort (-a) ends an interactive session at the first directive that
	// fails. Directives given with -c and scripts always stop there.
	Abort bool
	// Echo (-e) prints each directive before running it.
	Echo bool
	// NoExec (-n) checks the syntax of every directive and runs none; the
	// server is not contacted.
	NoExec bool
	// Quiet (-z) writes no error messages; the exit status still says.
	Quiet bool
}

// Config is what momgate-qmgr's flags select.
type Config struct {
	StateDir string   // --state-dir: the server's state directory; the socket is STATE_DIR/admin.sock
	Socket   string   // --socket: the admin socket path; wins over StateDir
	Commands []string // -c: directives to run in order; none means read In
	JSON     bool     // --json: print results as JSON (one document per run)
	Options  Options  // -a, -e, -n, -z
	// HistoryFile is the interactive history; "" is DefaultHistoryPath,
	// "-" keeps none.
	HistoryFile string
	In          io.Reader
	Out, Err    io.Writer
}

// SocketPath returns the admin socket the configuration names.
func (c Config) SocketPath() (string, error) {
	switch {
	case c.Socket != "":
		return c.Socket, nil
	case c.StateDir != "":
		return admin.SocketPath(c.StateDir), nil
	}
	return "", &UsageError{Msg: "qmgr: which server? give --state-dir DIR (the server's state directory) or --socket PATH"}
}

// Run is momgate-qmgr after flag parsing: the -c directives if any, else
// an interactive session when In is a terminal, else a script read from
// In. Every directive is checked before the first one runs; they then
// run in order and the first failure stops them. The server is only
// contacted once a directive needs it. With JSON, Out receives exactly
// one JSON document (see Document). A non-nil error gives the exit
// status ExitStatus returns; it is formatted ("qmgr: ...") and, unless
// Printed says so, not yet printed.
func Run(ctx context.Context, cfg Config) error {
	if cfg.JSON && cfg.Options.Echo {
		return &UsageError{Msg: "qmgr: -e and --json cannot be combined: the JSON document names each directive"}
	}
	var exec Executor = noServer{}
	if !cfg.Options.NoExec {
		path, err := cfg.SocketPath()
		if err != nil {
			return err
		}
		lc := &lazyClient{path: path}
		defer lc.Close()
		exec = lc
	}
	s := &Session{Exec: exec, Out: cfg.Out, Err: cfg.Err, JSON: cfg.JSON}
	if len(cfg.Commands) > 0 {
		lines := make([]numberedLine, len(cfg.Commands))
		for i, c := range cfg.Commands {
			lines[i] = numberedLine{i + 1, c}
		}
		return runBatch(ctx, s, cfg, lines, len(lines) == 1)
	}
	in := cfg.In
	if in == nil {
		in = strings.NewReader("")
	}
	if f, ok := in.(*os.File); ok && isTerminal(f) {
		return runTerminal(ctx, f, s, cfg)
	}
	lines, err := readScript(in)
	if err != nil {
		return err
	}
	return runBatch(ctx, s, cfg, lines, false)
}

// Exit statuses of momgate-qmgr, as PBS qmgr's.
const (
	ExitOK       = 0
	ExitSyntax   = 1 // a directive does not parse, or bad flags
	ExitFailed   = 2 // the server refused a directive, or it failed
	ExitNoServer = 3 // the server's admin socket could not be reached
)

// ExitStatus maps an error of Run to momgate-qmgr's exit status.
func ExitStatus(err error) int {
	var pe *ParseError
	var ue *UsageError
	var ce *ConnectError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &pe), errors.As(err, &ue):
		return ExitSyntax
	case errors.As(err, &ce):
		return ExitNoServer
	}
	return ExitFailed
}

// UsageError is a wrong use of momgate-qmgr itself (flags, no server
// named).
type UsageError struct{ Msg string }

// Error returns the message.
func (e *UsageError) Error() string { return e.Msg }

// ConnectError is a failure to reach the server's admin socket.
type ConnectError struct{ Err error }

// Error returns the admin client's message, which says what to do.
func (e *ConnectError) Error() string { return e.Err.Error() }

// Unwrap returns the dial error.
func (e *ConnectError) Unwrap() error { return e.Err }

// Printed reports whether err was already shown to the user (the
// interactive prompt prints errors as they happen).
func Printed(err error) bool {
	var pe *printedError
	return errors.As(err, &pe)
}

type printedError struct{ error }

func (e *printedError) Unwrap() error { return e.error }

// LineError is a failure of the directive on line Line of a script.
type LineError struct {
	Line int
	Err  error
}

// Error formats the error as "qmgr: line N: ...".
func (e *LineError) Error() string {
	return fmt.Sprintf("qmgr: line %d: %s", e.Line, strings.TrimPrefix(e.Err.Error(), "qmgr: "))
}

// Unwrap returns the directive's error.
func (e *LineError) Unwrap() error { return e.Err }

func isQuit(d Directive) bool { return d.Command == "quit" || d.Command == "exit" }

// noServer is the Executor of -n: nothing may reach a server.
type noServer struct{}

func (noServer) Call(context.Context, string, any, any) error {
	return errors.New("qmgr -n: no directive runs")
}

// lazyClient dials the admin socket on first use, so that help and
// syntax errors need no server.
type lazyClient struct {
	path string
	c    *admin.Client
}

func (l *lazyClient) Call(ctx context.Context, op string, args, out any) error {
	if l.c == nil {
		c, err := admin.Dial(ctx, l.path)
		if err != nil {
			return &ConnectError{Err: err}
		}
		l.c = c
	}
	return l.c.Call(ctx, op, args, out)
}

func (l *lazyClient) Close() {
	if l.c != nil {
		l.c.Close()
	}
}
