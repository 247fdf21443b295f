//go:build !linux

package qmgr

import "os"

// isTerminal reports whether f is a character device, which on these
// systems is taken to mean a terminal.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
