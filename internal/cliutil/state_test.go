package cliutil

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/momgate/momgate/statecheck"
)

// state check says what a start does before it reads a state file: it
// refuses a server directory with no state (a restore killed at its first
// step leaves one with only its lock) and a directory others can reach.
func TestCheckStateRefusesWhatAStartRefusesFirst(t *testing.T) {
	check := func(dir string, role statecheck.Role) (int, string) {
		var out bytes.Buffer
		code := CheckState(&out, dir, role)
		return code, out.String()
	}
	empty := t.TempDir()
	if err := os.Chmod(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(empty, "lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := check(empty, statecheck.RoleServer); code != StateRefuse || !strings.Contains(out, "not initialized") {
		t.Fatalf("server directory with only its lock: %d %q", code, out)
	}
	// Files a start would recover do not make it start on no state.
	if err := os.WriteFile(filepath.Join(empty, "ceiling"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := check(empty, statecheck.RoleServer); code != StateRefuse || !strings.Contains(out, "not initialized") {
		t.Fatalf("server directory with only a damaged ceiling: %d %q", code, out)
	}
	if err := os.Remove(filepath.Join(empty, "ceiling")); err != nil {
		t.Fatal(err)
	}
	if code, out := check(empty, statecheck.RoleMom); code != StateStart {
		t.Fatalf("MOM directory with only its lock (a legacy-only MOM starts on it): %d %q", code, out)
	}
	open := t.TempDir()
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, role := range []statecheck.Role{statecheck.RoleServer, statecheck.RoleMom} {
		if code, out := check(open, role); code != StateRefuse || !strings.Contains(out, "must be owner-only") || !strings.Contains(out, "chmod 700") {
			t.Fatalf("%s directory of mode 0755: %d %q", role, code, out)
		}
	}
}

// What a start opens before the state refuses it in state check too: a
// lock file or admin socket that is not one, a raft entry that is not a
// directory, files owned by another user than their directory.
func TestCheckStateRefusesPlantedEntries(t *testing.T) {
	plant := map[string]func(t *testing.T, dir string){
		"lock a directory":       func(t *testing.T, dir string) { mustDo(t, os.Mkdir(filepath.Join(dir, "lock"), 0o700)) },
		"lock a fifo":            func(t *testing.T, dir string) { mustDo(t, syscall.Mkfifo(filepath.Join(dir, "lock"), 0o600)) },
		"lock a symlink":         func(t *testing.T, dir string) { mustDo(t, os.Symlink("/dev/null", filepath.Join(dir, "lock"))) },
		"admin socket a file":    func(t *testing.T, dir string) { mustDo(t, os.WriteFile(filepath.Join(dir, "admin.sock"), nil, 0o600)) },
		"admin socket a symlink": func(t *testing.T, dir string) { mustDo(t, os.Symlink("/dev/null", filepath.Join(dir, "admin.sock"))) },
		"raft a file":            func(t *testing.T, dir string) { mustDo(t, os.WriteFile(filepath.Join(dir, "raft"), nil, 0o600)) },
	}
	for what, do := range plant {
		t.Run(what, func(t *testing.T) {
			dir := t.TempDir()
			mustDo(t, os.Chmod(dir, 0o700))
			do(t, dir)
			var out bytes.Buffer
			if code := CheckState(&out, dir, statecheck.RoleServer); code != StateRefuse {
				t.Fatalf("%s: exit %d, %q; want refuse", what, code, out.String())
			}
		})
	}
	if os.Geteuid() != 0 {
		return
	}
	dir := t.TempDir()
	mustDo(t, os.Chmod(dir, 0o700))
	mustDo(t, os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{}`), 0o600))
	mustDo(t, os.Chown(filepath.Join(dir, "state.json"), 65534, 65534))
	var out bytes.Buffer
	if code := CheckState(&out, dir, statecheck.RoleServer); code != StateRefuse || !strings.Contains(out.String(), "owned by uid 65534") {
		t.Fatalf("state.json owned by another user than its directory: %d %q", code, out.String())
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
