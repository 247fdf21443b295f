package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/statecheck"
)

// inspectWithin runs InspectDir and fails if it has not returned by the
// deadline: a FIFO opened for reading blocks until a writer comes, and
// none ever does (a daemon hung at start, a `state check` hung forever).
func inspectWithin(t *testing.T, dir string, role statecheck.Role) (*Inspection, error) {
	t.Helper()
	type res struct {
		in  *Inspection
		err error
	}
	done := make(chan res, 1)
	go func() {
		in, err := InspectDir(dir, role, [16]byte{})
		done <- res{in, err}
	}()
	select {
	case r := <-done:
		return r.in, r.err
	case <-time.After(30 * time.Second):
		t.Fatalf("InspectDir of %s did not return: blocked on a special file", dir)
		return nil, nil
	}
}

// TestStateFileSpecialRefused: a FIFO, a symlink (dangling or not) or a
// directory where a state file belongs is refused, never waited on or
// followed, nor taken for damage that a recovery would rewrite (a rename
// onto a directory fails for ever). The journal writer opens with O_NOFOLLOW, so a reader that
// followed a symlink said "start" to a directory the daemon then refused;
// a dangling one read as "missing" (a recovery) instead of as planted.
func TestStateFileSpecialRefused(t *testing.T) {
	plant := map[string]func(t *testing.T, path string){
		"fifo": func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
		},
		"symlink": func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "real")
			if err := os.WriteFile(target, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		},
		"dangling_symlink": func(t *testing.T, path string) {
			if err := os.Symlink(filepath.Join(t.TempDir(), "nothing"), path); err != nil {
				t.Fatal(err)
			}
		},
		"directory": func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		},
	}
	for _, file := range []string{"deny.journal", "state.journal", MarkLogName, "deny.json", "ceiling"} {
		for kind, do := range plant {
			t.Run(file+"/"+kind, func(t *testing.T) {
				dir := t.TempDir()
				do(t, filepath.Join(dir, file))
				in, err := inspectWithin(t, dir, statecheck.RoleServer)
				if err == nil {
					t.Fatalf("%s as a %s: findings %+v, want it refused", file, kind, in.Findings)
				}
				if !errors.Is(err, statefile.ErrNotRegular) || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "remove it") {
					t.Fatalf("error %v, want one wrapping ErrNotRegular that names %s and the fix", err, file)
				}
			})
		}
	}
}

// A directory where a MOM's deny.json belongs is refused: held as damaged,
// the MOM would wait for the server's DenySet and then fail to save it for
// ever, reconnecting in a loop.
func TestMomDenyFileDirectoryRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "deny.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := inspectWithin(t, dir, statecheck.RoleMom); !errors.Is(err, statefile.ErrNotRegular) {
		t.Fatalf("deny.json a directory in a MOM's state: %v, want ErrNotRegular", err)
	}
}
