package qmgr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/chzyer/readline"
)

// lineSource reads directive lines at the prompt.
type lineSource interface {
	// ReadLine returns the next line, io.EOF at the end of input, or
	// errInterrupt when Ctrl-C was typed on an empty line.
	ReadLine() (string, error)
}

var errInterrupt = errors.New("interrupted")

// plainSource prompts on out and reads lines from a reader, no editing.
type plainSource struct {
	sc  *bufio.Scanner
	out io.Writer
}

func (p *plainSource) ReadLine() (string, error) {
	if _, err := io.WriteString(p.out, Prompt); err != nil {
		return "", fmt.Errorf("qmgr: write prompt: %w", err)
	}
	if p.sc.Scan() {
		return p.sc.Text(), nil
	}
	io.WriteString(p.out, "\n")
	if err := p.sc.Err(); err != nil {
		return "", scanErr(err, 0)
	}
	return "", io.EOF
}

// editSource is a terminal with line editing, history and completion.
type editSource struct{ rl *readline.Instance }

func (e *editSource) ReadLine() (string, error) {
	for {
		line, err := e.rl.Readline()
		switch {
		case errors.Is(err, readline.ErrInterrupt) && line != "":
			continue // Ctrl-C abandons the line being typed
		case errors.Is(err, readline.ErrInterrupt):
			return "", errInterrupt
		case errors.Is(err, io.EOF):
			return "", io.EOF
		case err != nil:
			return "", fmt.Errorf("qmgr: read terminal: %w", err)
		}
		return line, nil
	}
}

// prompt is an interactive session's loop and what it keeps.
type prompt struct {
	src  lineSource
	s    *Session
	opt  Options
	hist *History           // nil: no history
	comp *Completer         // nil: no completion
	rl   *readline.Instance // nil: no line editor
}

// RunInteractive prompts with "Qmgr: " on out and runs each directive
// read from in, printing errors to s.Err and carrying on; quit, exit or
// end of input ends the session. help prints the directive summary. It
// returns an error only if reading in fails. This is the prompt without
// a terminal (no editing); momgate-qmgr on a terminal edits lines, keeps
// a history file and completes with Tab.
func RunInteractive(ctx context.Context, in io.Reader, out io.Writer, s *Session) error {
	p := &prompt{src: &plainSource{sc: newScanner(in), out: out}, s: s}
	return p.loop(ctx)
}

// runTerminal is the interactive session on terminal f.
func runTerminal(ctx context.Context, f *os.File, s *Session, cfg Config) error {
	errw := s.Err
	if errw == nil {
		errw = io.Discard
	}
	hist := openHistory(cfg.HistoryFile, errw, cfg.Options.Quiet)
	comp := &Completer{Exec: s.Exec}
	if cfg.Options.NoExec {
		comp.Exec = nil
	}
	rl, err := readline.NewEx(&readline.Config{
		Prompt:                 Prompt,
		HistoryLimit:           historyMax,
		DisableAutoSaveHistory: true,
		HistorySearchFold:      true,
		AutoComplete:           lineCompleter{ctx: ctx, c: comp},
		Stdin:                  readline.NewCancelableStdin(f),
		Stdout:                 s.Out,
		Stderr:                 errw,
		FuncIsTerminal:         func() bool { return true },
	})
	if err != nil {
		return fmt.Errorf("qmgr: terminal: %w", err)
	}
	defer rl.Close()
	for _, l := range hist.Lines() {
		rl.SaveHistory(l)
	}
	s.History = hist.Lines
	p := &prompt{src: &editSource{rl: rl}, s: s, opt: cfg.Options, hist: hist, comp: comp, rl: rl}
	return p.loop(ctx)
}

// openHistory loads the history file path ("" the default, "-" none); a
// history that cannot be read is kept in memory, with a warning.
func openHistory(path string, errw io.Writer, quiet bool) *History {
	warn := func(err error) {
		if !quiet {
			fmt.Fprintf(errw, "qmgr: %v (history is not saved)\n", err)
		}
	}
	if path == "-" {
		h, _ := LoadHistory("")
		return h
	}
	if path == "" {
		p, err := DefaultHistoryPath()
		if err != nil {
			warn(err)
		}
		path = p
	}
	h, err := LoadHistory(path)
	if err != nil {
		warn(err)
		h, _ = LoadHistory("")
	}
	return h
}

// loop reads and runs directives until quit, end of input, or (with
// Abort) the first failure.
func (p *prompt) loop(ctx context.Context) error {
	errw := p.s.Err
	if errw == nil {
		errw = p.s.Out
	}
	if errw == nil {
		errw = io.Discard
	}
	histWarned := false
	for ctx.Err() == nil {
		line, err := p.src.ReadLine()
		if errors.Is(err, io.EOF) || errors.Is(err, errInterrupt) {
			return nil
		}
		if err != nil {
			return err
		}
		if p.hist != nil {
			if added, herr := p.hist.Add(line); herr != nil && !histWarned && !p.opt.Quiet {
				fmt.Fprintf(errw, "%v (history is not saved)\n", herr)
				histWarned = true
			} else if added && p.rl != nil {
				p.rl.SaveHistory(strings.TrimSpace(line))
			}
		}
		d, err := Parse(line)
		if err == nil && isQuit(d) {
			return nil
		}
		if err == nil && p.opt.Echo && d.Command != "" && p.s.Out != nil {
			fmt.Fprintln(p.s.Out, strings.TrimSpace(line))
		}
		if err == nil && !p.opt.NoExec {
			err = p.s.Run(ctx, d)
			if p.comp != nil && d.Command != "" && d.Command != "help" && d.Command != "history" {
				p.comp.Forget() // the directive may have added or removed names
			}
		}
		if err != nil {
			if !p.opt.Quiet {
				fmt.Fprintln(errw, err)
			}
			if p.opt.Abort {
				return &printedError{err}
			}
		}
	}
	return nil
}

// lineCompleter is the Completer as readline's Tab handler.
type lineCompleter struct {
	ctx context.Context
	c   *Completer
}

// Do returns the candidates' suffixes past the word typed, and its length.
func (l lineCompleter) Do(line []rune, pos int) ([][]rune, int) {
	word, cands := l.c.Complete(l.ctx, string(line[:pos]))
	n := len([]rune(word))
	out := make([][]rune, 0, len(cands))
	for _, k := range cands {
		if c := []rune(k.Word + k.Suffix); len(c) >= n {
			out = append(out, c[n:])
		}
	}
	return out, n
}
