package demo

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// Foreground runs name with args in a process group of its own and, when
// this process has a controlling terminal, makes that group the
// terminal's foreground group until it ends, then takes the terminal back.
// Ctrl-C then reaches the command and its children alone: make, which ran
// `make run`, and a pipe reader such as tee are not interrupted, so the
// demo's own exit status (0 after a clean stop) is make's. Without a
// terminal the command runs as it is. It returns the command's exit
// status (128+N if signal N ended it).
func Foreground(name string, args ...string) (int, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err == nil {
		defer tty.Close()
		// Taking the terminal back from a background group raises
		// SIGTTOU; so would the child's taking it, before its exec.
		signal.Ignore(syscall.SIGTTOU)
		cmd.SysProcAttr = &syscall.SysProcAttr{Foreground: true, Ctty: int(tty.Fd())}
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", name, err)
	}
	werr := cmd.Wait()
	if tty != nil {
		if err := unix.IoctlSetPointerInt(int(tty.Fd()), unix.TIOCSPGRP, unix.Getpgrp()); err != nil {
			return 0, fmt.Errorf("take the terminal back: %w", err)
		}
	}
	var ee *exec.ExitError
	switch {
	case werr == nil:
		return 0, nil
	case errors.As(werr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, fmt.Errorf("wait for %s: %w", name, werr)
}
