package qmgr

import (
	"bufio"
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

func newScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	return sc
}

func scanErr(err error, line int) error {
	if errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("qmgr: line %d: longer than %d bytes", line, maxLine)
	}
	return fmt.Errorf("qmgr: read directives: %w", err)
}

// RunScript runs the directives read from r, one per line (blank lines
// and comments skipped, quit or exit ends the script), as for
// `momgate-qmgr < file`. The whole script is parsed first: a syntax error
// on any line runs nothing. Directives then run in order and the first
// one that fails stops the script, later lines are not run, and a
// *LineError is returned (the CLI exits non-zero); earlier directives
// stay applied.
func RunScript(ctx context.Context, r io.Reader, s *Session) error {
	type numbered struct {
		line int
		d    Directive
	}
	var ds []numbered
	sc := newScanner(r)
	line := 0
	for sc.Scan() {
		line++
		if line > maxScriptLines {
			return fmt.Errorf("qmgr: script longer than %d lines", maxScriptLines)
		}
		d, err := Parse(sc.Text())
		if err != nil {
			return &LineError{Line: line, Err: err}
		}
		if isQuit(d) {
			break
		}
		if d.Command != "" {
			ds = append(ds, numbered{line, d})
		}
	}
	if err := sc.Err(); err != nil {
		return scanErr(err, line+1)
	}
	for _, nd := range ds {
		if err := ctx.Err(); err != nil {
			return &LineError{Line: nd.line, Err: fmt.Errorf("qmgr: %w", err)}
		}
		if err := s.Run(ctx, nd.d); err != nil {
			return &LineError{Line: nd.line, Err: err}
		}
	}
	return nil
}

// RunInteractive prompts with "Qmgr: " on out and runs each directive
// read from in, printing errors to s.Err and carrying on; quit, exit or
// end of input ends the session. help prints the directive summary. It
// returns an error only if reading in fails.
func RunInteractive(ctx context.Context, in io.Reader, out io.Writer, s *Session) error {
	errw := s.Err
	if errw == nil {
		errw = out
	}
	sc := newScanner(in)
	for ctx.Err() == nil {
		if _, err := io.WriteString(out, Prompt); err != nil {
			return fmt.Errorf("qmgr: write prompt: %w", err)
		}
		if !sc.Scan() {
			io.WriteString(out, "\n")
			if err := sc.Err(); err != nil {
				return scanErr(err, 0)
			}
			return nil
		}
		d, err := Parse(sc.Text())
		if err == nil && isQuit(d) {
			return nil
		}
		if err == nil {
			err = s.Run(ctx, d)
		}
		if err != nil {
			fmt.Fprintln(errw, err)
		}
	}
	return nil
}

// Config is what momgate-qmgr's flags select.
type Config struct {
	StateDir string   // --state-dir: the server's state directory; the socket is STATE_DIR/admin.sock
	Socket   string   // --socket: the admin socket path; wins over StateDir
	Commands []string // -c: directives to run in order; none means read In
	JSON     bool     // --json: print results as JSON
	In       io.Reader
	Out, Err io.Writer
}

// SocketPath returns the admin socket the configuration names.
func (c Config) SocketPath() (string, error) {
	switch {
	case c.Socket != "":
		return c.Socket, nil
	case c.StateDir != "":
		return admin.SocketPath(c.StateDir), nil
	}
	return "", errors.New("qmgr: which server? give --state-dir DIR (the server's state directory) or --socket PATH")
}

// Run is momgate-qmgr after flag parsing: the -c directives if any (the
// first failure stops them), else an interactive session when In is a
// terminal, else a script read from In. The server is only contacted
// once a directive needs it. A non-nil error means exit status 1; it is
// already formatted ("qmgr: ...") and, except for interactive sessions
// which print their own errors, not yet printed.
func Run(ctx context.Context, cfg Config) error {
	path, err := cfg.SocketPath()
	if err != nil {
		return err
	}
	exec := &lazyClient{path: path}
	defer exec.Close()
	s := &Session{Exec: exec, Out: cfg.Out, Err: cfg.Err, JSON: cfg.JSON}
	if len(cfg.Commands) > 0 {
		for _, c := range cfg.Commands {
			d, err := Parse(c)
			if err != nil {
				return err
			}
			if isQuit(d) {
				return nil
			}
			if err := s.Run(ctx, d); err != nil {
				return err
			}
		}
		return nil
	}
	in := cfg.In
	if in == nil {
		in = strings.NewReader("")
	}
	if f, ok := in.(*os.File); ok && isTerminal(f) {
		return RunInteractive(ctx, in, cfg.Out, s)
	}
	return RunScript(ctx, in, s)
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
			return err
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
