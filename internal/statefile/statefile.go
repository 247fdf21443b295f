// Package statefile writes state files atomically and reads secret-bearing
// files only when their permissions keep them private.
package statefile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Sentinel errors of ReadPrivate and CheckPrivate.
var (
	ErrInsecurePerm = errors.New("file is readable or writable by group or others")
	ErrWrongOwner   = errors.New("file is not owned by the running user")
	ErrNotRegular   = errors.New("not a regular file")
	ErrTooLarge     = errors.New("file too large")
)

// MaxPrivateSize caps what ReadPrivate reads.
const MaxPrivateSize = 1 << 20

// WriteAtomic replaces path with data: a temporary file in the same
// directory is written, synced and renamed over path, then the directory is
// synced, so a crash leaves either the old or the new content, never a mix.
// The file gets exactly perm, whatever the umask.
func WriteAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: chmod: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: rename: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so a rename in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// CheckPrivate refuses a file that is not a regular file, is accessible by
// group or others, or is not owned by the running user. The error names the
// file, what is wrong and the fix.
func CheckPrivate(path string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %w (mode %s)", path, ErrNotRegular, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o: %w; fix: chmod 600 %s", path, perm, ErrInsecurePerm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, not %d: %w; fix: chown %d %s", path, st.Uid, os.Geteuid(), ErrWrongOwner, os.Geteuid(), path)
	}
	return nil
}

// ReadPrivate reads a file that must pass CheckPrivate, checked on the open
// file (no race with a rename), at most MaxPrivateSize bytes. It does not
// follow a symlink at path, and it opens without blocking, so a FIFO at
// path is refused rather than waited on (O_NONBLOCK does not change reads
// of a regular file).
func ReadPrivate(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s is a symlink: %w", path, ErrNotRegular)
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := CheckPrivate(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxPrivateSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxPrivateSize {
		return nil, fmt.Errorf("%s: %w (limit %d bytes)", path, ErrTooLarge, MaxPrivateSize)
	}
	return data, nil
}
