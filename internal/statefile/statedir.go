package statefile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// CheckStateDir refuses a daemon's state directory that group or others
// can enter, list or write, or that another user owns, and one whose
// regular files or subdirectories group or others can read or write. The
// error names every offender with its mode, wraps ErrInsecurePerm or
// ErrWrongOwner, and ends with the commands that fix it. Sockets and
// symlinks are left alone (the admin socket is 0600 and checks its
// caller; key files refuse symlinks themselves). It reads the directory
// once, without following anything inside it, and changes nothing: a
// daemon calls it at start, before it loads any state.
func CheckStateDir(dir string) error { return checkStateDir(dir, true) }

// CheckStateDirModes is CheckStateDir for the directory's own owner
// instead of the caller: what a start refuses whichever user runs it
// (`state check` run by root on the directory of a daemon that runs as
// its own user): modes, and files owned by another user than the
// directory (no user's start accepts those).
func CheckStateDirModes(dir string) error { return checkStateDir(dir, false) }

func checkStateDir(dir string, checkOwner bool) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s is not a directory (mode %s)", dir, fi.Mode())
	}
	want, known := os.Geteuid(), true // the owner every entry must have
	if uid, ok := owner(fi); checkOwner && ok && uid != want {
		return fmt.Errorf("state directory %s is owned by uid %d, not %d: %w; fix: chown -R %d %s",
			dir, uid, want, ErrWrongOwner, want, dir)
	} else if !checkOwner {
		want, known = uid, ok
	}
	var bad []string             // "PATH has mode 0NNN"
	var dirFix, fileFix []string // chmod 700 / chmod 600 operands
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		bad = append(bad, fmt.Sprintf("%s has mode %04o", dir, perm))
		dirFix = append(dirFix, dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() && !e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		path := filepath.Join(dir, e.Name())
		if uid, ok := owner(info); known && ok && uid != want {
			return fmt.Errorf("state directory %s: %s is owned by uid %d, not %d: %w; fix: chown -R %d %s",
				dir, path, uid, want, ErrWrongOwner, want, dir)
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			bad = append(bad, fmt.Sprintf("%s has mode %04o", path, perm))
			if e.IsDir() {
				dirFix = append(dirFix, path)
			} else {
				fileFix = append(fileFix, path)
			}
		}
	}
	if len(bad) == 0 {
		return nil
	}
	var fix []string
	if len(dirFix) > 0 {
		fix = append(fix, "chmod 700 "+strings.Join(dirFix, " "))
	}
	if len(fileFix) > 0 {
		fix = append(fix, "chmod 600 "+strings.Join(fileFix, " "))
	}
	return fmt.Errorf("state directory %s must be owner-only: %s: %w; fix: %s",
		dir, strings.Join(bad, ", "), ErrInsecurePerm, strings.Join(fix, " && "))
}

// owner is the uid that owns fi's file, if the platform says.
func owner(fi os.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
