// Package statelock locks a daemon's state directory, so that a second
// daemon started on the same directory is refused before it opens any
// state file for writing or compaction, and touches nothing.
//
// The lock is flock(2) on the directory itself and on the file "lock" in
// it: the kernel drops both when their holder exits, however it exits
// (kill -9 included), so a crash never leaves a stale lock behind. The
// directory's lock is the one that counts: a lock file deleted or
// replaced under a running daemon (an administrator removing a "stale"
// lock, a restore that brings its own) would let a second daemon lock the
// new file, but not the directory. The file's lock keeps a daemon of an
// older version, which locks only the file, out. The holder writes its
// process id into the file for the refusal message of the next one; a
// refused locker writes nothing, nor creates the file.
package statelock

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// FileName is the lock file inside the state directory.
const FileName = "lock"

// ErrLocked means another process holds the state directory's lock.
var ErrLocked = errors.New("state directory is in use by another process")

// Lock is a held state directory lock.
type Lock struct {
	d    *os.File // the directory, flocked
	f    *os.File // the lock file, flocked
	path string
}

// Check reports what Acquire would refuse in dir's lock file without
// taking the lock (`state check`): a lock path that is not a regular file
// (a directory, FIFO, socket or symlink planted there). A missing one is
// fine: Acquire creates it.
func Check(dir string) error {
	path := filepath.Join(dir, FileName)
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("lock state directory: %w", err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("lock state directory: %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	return nil
}

// Acquire takes the lock of the existing directory dir without waiting.
// If another process holds it, the error wraps ErrLocked and names the
// directory and, when the holder recorded it, its process id; nothing in
// dir has been changed.
func Acquire(dir string) (*Lock, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("lock state directory %s: not a directory", dir)
	}
	path := filepath.Join(dir, FileName)
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("lock state directory: open %s: %w", dir, err)
	}
	if err := flock(d, dir, path); err != nil {
		d.Close()
		return nil, err
	}
	// O_CREATE only makes a missing lock file; an existing one is opened
	// as it is. O_NOFOLLOW: a symlink planted at path is refused.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("lock state directory: open %s: %w", path, err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		d.Close()
		return nil, fmt.Errorf("lock state directory: %s is not a regular file", path)
	}
	if err := flock(f, dir, path); err != nil {
		f.Close()
		d.Close()
		return nil, err
	}
	l := &Lock{d: d, f: f, path: path}
	if err := l.record(); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// flock takes the exclusive lock of f (the directory dir or its lock file
// at path) without waiting; ErrLocked, naming the holder, if another
// process has it.
func flock(f *os.File, dir, path string) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return fmt.Errorf("%w: %s is locked (%s) by %s: stop that daemon first, or give this one another --state-dir",
			ErrLocked, dir, path, holderOf(path))
	}
	return fmt.Errorf("lock state directory %s: flock %s: %w", dir, f.Name(), err)
}

// record writes the holder's process id into the lock file.
func (l *Lock) record() error {
	pid := strconv.Itoa(os.Getpid()) + "\n"
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("lock state directory: %s: %w", l.path, err)
	}
	if _, err := l.f.WriteAt([]byte(pid), 0); err != nil {
		return fmt.Errorf("lock state directory: %s: %w", l.path, err)
	}
	return nil
}

// holderOf describes the process recorded in the lock file at path,
// which it opens read-only (never creating it).
func holderOf(path string) string {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "another process"
	}
	defer f.Close()
	var buf [32]byte
	n, _ := f.ReadAt(buf[:], 0)
	if pid, err := strconv.Atoi(string(bytes.TrimSpace(buf[:n]))); err == nil && pid > 0 {
		return "process " + strconv.Itoa(pid)
	}
	return "another process"
}

// Path returns the lock file's path.
func (l *Lock) Path() string { return l.path }

// Release drops the lock. The lock file stays (removing it would let a
// third process lock a new file while a second still waits on the old).
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Closing the only descriptors drops the flocks.
	err := errors.Join(l.f.Close(), l.d.Close())
	l.f, l.d = nil, nil
	if err != nil {
		return fmt.Errorf("release state directory lock %s: %w", l.path, err)
	}
	return nil
}
