package qmgr

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/momgate/momgate/internal/admin"
)

// numberedLine is one directive line with its number: its line in a
// script, or its place among the -c directives.
type numberedLine struct {
	n    int
	text string
}

func newScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	return sc
}

func scanErr(err error, line int) error {
	if errors.Is(err, bufio.ErrTooLong) {
		return &UsageError{Msg: fmt.Sprintf("qmgr: line %d: longer than %d bytes", line, maxLine)}
	}
	return fmt.Errorf("qmgr: read directives: %w", err)
}

// readScript reads the lines of a script, bounded in count and length.
func readScript(r io.Reader) ([]numberedLine, error) {
	var lines []numberedLine
	sc := newScanner(r)
	for sc.Scan() {
		if len(lines) == maxScriptLines {
			return nil, &UsageError{Msg: fmt.Sprintf("qmgr: script longer than %d lines", maxScriptLines)}
		}
		lines = append(lines, numberedLine{len(lines) + 1, sc.Text()})
	}
	if err := sc.Err(); err != nil {
		return nil, scanErr(err, len(lines)+1)
	}
	return lines, nil
}

// RunScript runs the directives read from r, one per line (blank lines
// and comments skipped, quit or exit ends the script), as for
// `momgate-qmgr < file`. The whole script is parsed first: a syntax error
// on any line runs nothing. Directives then run in order and the first
// one that fails stops the script, later lines are not run, and a
// *LineError is returned (the CLI exits non-zero); earlier directives
// stay applied.
func RunScript(ctx context.Context, r io.Reader, s *Session) error {
	lines, err := readScript(r)
	if err != nil {
		return err
	}
	return runBatch(ctx, s, Config{}, lines, false)
}

// Outcome is one directive's element of the --json document.
type Outcome struct {
	Directive string          `json:"directive"`        // canonical form; as written if it does not parse
	Line      int             `json:"line"`             // line of the script, or place among the -c directives
	Result    json.RawMessage `json:"result,omitempty"` // the directive's result (absent with -n and on failure)
	Error     string          `json:"error,omitempty"`  // why it failed
	Code      string          `json:"code,omitempty"`   // machine-readable reason (ErrorCode)
	Column    int             `json:"column,omitempty"` // where a syntax error points
}

// ErrorCode is the machine-readable reason of an error of Run: the
// server's admin code (unknown_node, duplicate_node, bad_value, conflict,
// ...), syntax_error or bad_value for a directive that does not parse,
// no_server when the admin socket cannot be reached, usage for a wrong
// use of qmgr.
func ErrorCode(err error) string {
	var pe *ParseError
	var ue *UsageError
	var ce *ConnectError
	switch {
	case errors.As(err, &pe):
		return strings.ReplaceAll(pe.Kind, " ", "_")
	case errors.As(err, &ue):
		return "usage"
	case errors.As(err, &ce):
		return "no_server"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "interrupted"
	}
	return admin.CodeOf(err)
}

// batch runs checked directives in order and collects their outcomes.
type batch struct {
	s     *Session
	opt   Options
	asCmd bool // the lines are -c directives, not a script
	doc   []Outcome
}

func (b *batch) fail(l numberedLine, directive string, err error) error {
	o := Outcome{Directive: directive, Line: l.n, Error: strings.TrimPrefix(err.Error(), "qmgr: "), Code: ErrorCode(err)}
	var pe *ParseError
	if errors.As(err, &pe) {
		o.Column = pe.Col
	}
	b.doc = append(b.doc, o)
	if b.asCmd {
		return err
	}
	return &LineError{Line: l.n, Err: err}
}

// runBatch parses every line, then runs the directives until one fails.
// single: exactly one -c directive, whose result alone is the JSON
// document.
func runBatch(ctx context.Context, s *Session, cfg Config, lines []numberedLine, single bool) error {
	b := &batch{s: s, opt: cfg.Options, asCmd: len(cfg.Commands) > 0}
	err := b.run(ctx, lines)
	if s.JSON {
		if werr := b.writeDocument(single); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

func (b *batch) run(ctx context.Context, lines []numberedLine) error {
	type checked struct {
		numberedLine
		d Directive
	}
	var ds []checked
	for _, l := range lines {
		d, err := Parse(l.text)
		if err != nil {
			return b.fail(l, strings.TrimSpace(l.text), err)
		}
		if isQuit(d) {
			break
		}
		if d.Command != "" {
			ds = append(ds, checked{l, d})
		}
	}
	for _, c := range ds {
		if b.opt.Echo && b.s.Out != nil {
			fmt.Fprintln(b.s.Out, strings.TrimSpace(c.text))
		}
		if b.opt.NoExec {
			b.doc = append(b.doc, Outcome{Directive: c.d.String(), Line: c.n})
			continue
		}
		if err := ctx.Err(); err != nil {
			return b.fail(c.numberedLine, c.d.String(), fmt.Errorf("qmgr: %w", err))
		}
		out, err := b.s.execute(ctx, c.d)
		if err != nil {
			return b.fail(c.numberedLine, c.d.String(), err)
		}
		if b.s.JSON {
			b.doc = append(b.doc, Outcome{Directive: c.d.String(), Line: c.n, Result: bytes.TrimSpace(out)})
			continue
		}
		if b.s.Out != nil && len(out) > 0 {
			if _, err := b.s.Out.Write(out); err != nil {
				return b.fail(c.numberedLine, c.d.String(), fmt.Errorf("qmgr: write output: %w", err))
			}
		}
	}
	return nil
}

// writeDocument prints the run's one JSON document: the outcomes as an
// array, or for a single -c directive its result (its outcome when it has
// none: failed, or checked with -n; null when nothing ran).
func (b *batch) writeDocument(single bool) error {
	if b.s.Out == nil {
		return nil
	}
	var doc any = b.doc
	if b.doc == nil {
		doc = []Outcome{}
	}
	if single {
		switch {
		case len(b.doc) == 0:
			doc = nil
		case b.doc[0].Result != nil:
			doc = b.doc[0].Result
		default:
			doc = b.doc[0]
		}
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("qmgr: encode JSON document: %w", err)
	}
	if _, err := b.s.Out.Write(append(out, '\n')); err != nil {
		return fmt.Errorf("qmgr: write output: %w", err)
	}
	return nil
}
