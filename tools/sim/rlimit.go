package sim

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// RaiseFileLimit raises this process's RLIMIT_NOFILE, soft and hard, to
// at least want descriptors (the server and the MOM it starts inherit
// it), up to the kernel's fs.nr_open. Raising the hard limit needs
// CAP_SYS_RESOURCE (root); without it the soft limit goes up to the hard
// one and the error says what is missing.
func RaiseFileLimit(want uint64) (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("file descriptor limit: %w", err)
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && want > n {
			want = n
		}
	}
	next := unix.Rlimit{Cur: want, Max: max(want, lim.Max)}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &next); err != nil {
		next = unix.Rlimit{Cur: lim.Max, Max: lim.Max}
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &next)
		return next.Cur, fmt.Errorf("raise the file descriptor limit to %d (hard limit %d; raising it needs root or CAP_SYS_RESOURCE): %w",
			want, lim.Max, err)
	}
	return next.Cur, nil
}

// filesReserve is what a process of a run needs besides a descriptor per
// connected node: state files, logs, listeners, admin connections, sister
// swaps in flight.
const filesReserve = 1000

// FilesNeeded is the descriptor limit a run of n simulated nodes, all
// connected, needs in each of its processes.
func FilesNeeded(n int) uint64 { return uint64(n) + filesReserve }

// ConnectedWithin is how many nodes may be connected at once under a
// descriptor limit of limit in each process.
func ConnectedWithin(limit uint64) int {
	if limit <= filesReserve+1 {
		return 1
	}
	return int(limit - filesReserve)
}
