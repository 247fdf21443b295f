// Package pbsgate serves the OpenPBS plugin's local protocol
// (docs/OPENPBS.md section 4) on a daemon's Unix socket: it learns who
// asks from SO_PEERCRED, resolves the peer host PBS named, runs one step of
// the handshake on the daemon's pbsauth.Engine, answers, and writes every
// refusal and every admission to the audit log.
package pbsgate

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// maxSocketPath is the longest usable socket path (sun_path minus the NUL).
const maxSocketPath = 107

// Listen creates the socket at path, mode 0666: anyone on the host may
// ask, the daemon vouches for whoever it is. The directory is created
// 0755 if missing and must not be writable by group or others (the
// plugin checks the same), so nobody else can put a socket in its place.
// A leftover socket nobody answers on is removed; a live one is an error.
func Listen(path string) (*net.UnixListener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("pbs socket %s: path is %d bytes, the limit is %d", path, len(path), maxSocketPath)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pbs socket directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("pbs socket directory %s: %w", dir, err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("pbs socket directory %s is mode %04o: group or others may write it (chmod go-w %s)", dir, fi.Mode().Perm(), dir)
	}
	// The plugin trusts a daemon running as root or as the directory's owner.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() != 0 && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("pbs socket directory %s belongs to uid %d, not to this daemon's uid %d: the plugin would refuse the socket (chown it)", dir, st.Uid, os.Geteuid())
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("pbs socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("pbs socket %s: %w", path, err)
	}
	return ln, nil
}

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pbs socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("pbs socket %s: exists and is not a socket (%s); refusing to remove it", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("pbs socket %s: in use by a running process", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("pbs socket %s: probe existing socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pbs socket %s: remove stale socket: %w", path, err)
	}
	return nil
}
