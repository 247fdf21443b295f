package store

import (
	"errors"
	"os"
	"path/filepath"
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
// followed. The journal writer opens with O_NOFOLLOW, so a reader that
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
				if err != nil {
					if !errors.Is(err, statefile.ErrNotRegular) {
						t.Fatalf("error %v, want one wrapping ErrNotRegular", err)
					}
					return
				}
				for _, f := range in.Findings {
					if f.File == file && f.Problem == statecheck.Damaged {
						return
					}
				}
				t.Fatalf("%s as a %s: findings %+v, want it refused or found damaged", file, kind, in.Findings)
			})
		}
	}
}
