//go:build linux

// Package ptytest runs a program on a pseudo-terminal for tests: it types
// keys and waits, with a deadline, for what the program prints.
package ptytest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Term is a program running on a pseudo-terminal.
type Term struct {
	ptm  *os.File
	cmd  *exec.Cmd
	done chan struct{} // closed when the output reader ends

	mu      sync.Mutex
	out     bytes.Buffer  // everything printed, escape sequences removed
	mark    int           // Expect looks past this offset
	changed chan struct{} // closed and replaced on every read
}

// open returns a new pseudo-terminal: its controlling side, non-blocking
// so that Close interrupts a read, and the terminal device.
func open(rows, cols uint16) (*os.File, *os.File, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	fail := func(what string, err error) (*os.File, *os.File, error) {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("pty %s: %w", what, err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return fail("unlock", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		return fail("number", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail("nonblock", err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fail("open terminal", err)
	}
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		pts.Close()
		return fail("window size", err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), pts, nil
}

// Start runs cmd with a new 40x200 terminal as its standard input, output
// and error and its controlling terminal.
func Start(cmd *exec.Cmd) (*Term, error) {
	ptm, pts, err := open(40, 200)
	if err != nil {
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	pts.Close()
	if err != nil {
		ptm.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	t := &Term{ptm: ptm, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	go t.read()
	return t, nil
}

// escapes are terminal control sequences: CSI (cursor moves, erase),
// OSC, and the carriage returns and bells a line editor writes.
var escapes = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\a]*\a|\x1b[=>]|[\r\a]`)

func (t *Term) read() {
	defer close(t.done)
	var raw []byte
	buf := make([]byte, 4096)
	for {
		n, err := t.ptm.Read(buf)
		if n > 0 {
			raw = append(raw, buf[:n]...)
			t.mu.Lock()
			t.out.Reset()
			t.out.Write(escapes.ReplaceAll(raw, nil))
			close(t.changed)
			t.changed = make(chan struct{})
			t.mu.Unlock()
		}
		if err != nil {
			return // EIO once the program exits, or Close
		}
	}
}

// Send types s.
func (t *Term) Send(s string) error {
	_, err := t.ptm.WriteString(s)
	return err
}

// Expect waits until the output printed since the last Expect contains
// want, and returns that output up to the end of want. Control sequences
// and carriage returns are removed from the output first.
func (t *Term) Expect(want string, timeout time.Duration) (string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		rest := t.out.Bytes()[t.mark:]
		ch := t.changed
		if i := bytes.Index(rest, []byte(want)); i >= 0 {
			got := string(rest[:i+len(want)])
			t.mark += i + len(want)
			t.mu.Unlock()
			return got, nil
		}
		t.mu.Unlock()
		select {
		case <-ch:
		case <-t.done:
			if t.contains(want) {
				continue
			}
			return "", fmt.Errorf("program ended before printing %q; it printed:\n%s", want, t.Output())
		case <-deadline.C:
			return "", fmt.Errorf("no %q within %s; printed since the last match:\n%s", want, timeout, t.pending())
		}
	}
}

func (t *Term) contains(want string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Contains(t.out.Bytes()[t.mark:], []byte(want))
}

func (t *Term) pending() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.out.Bytes()[t.mark:])
}

// Output returns everything printed so far, control sequences removed.
func (t *Term) Output() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.out.String()
}

// Wait waits, at most timeout, for the program to exit and returns its
// error (an *exec.ExitError for a non-zero status). A program still
// running then is killed.
func (t *Term) Wait(timeout time.Duration) error {
	exited := make(chan error, 1)
	go func() { exited <- t.cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-exited:
		return err
	case <-timer.C:
		t.cmd.Process.Kill()
		<-exited
		return errors.New("program did not exit in time: killed")
	}
}

// Close kills the program if it still runs and releases the terminal.
func (t *Term) Close() {
	if t.cmd.ProcessState == nil {
		t.cmd.Process.Kill()
		t.cmd.Wait()
	}
	t.ptm.Close()
	<-t.done
}
