package cliutil

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
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
