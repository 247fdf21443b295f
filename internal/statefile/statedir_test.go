package statefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stateDir makes an owner-only directory holding the named files at their
// modes (a name ending in / is a subdirectory).
func stateDir(t *testing.T, files map[string]os.FileMode) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, mode := range files {
		path := filepath.Join(dir, strings.TrimSuffix(name, "/"))
		var err error
		if strings.HasSuffix(name, "/") {
			err = os.Mkdir(path, 0o700)
		} else {
			err = os.WriteFile(path, []byte("{}"), 0o600)
		}
		if err == nil {
			err = os.Chmod(path, mode)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckStateDir(t *testing.T) {
	t.Run("owner_only_passes", func(t *testing.T) {
		dir := stateDir(t, map[string]os.FileMode{"state.json": 0o600, "identity.json": 0o400, "sub/": 0o700})
		if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		if err := CheckStateDir(dir); err != nil {
			t.Fatalf("owner-only directory refused: %v", err)
		}
	})
	for _, tc := range []struct {
		name    string
		dirMode os.FileMode
		files   map[string]os.FileMode
		want    []string // in the message
	}{
		{"directory_0755", 0o755, map[string]os.FileMode{"state.json": 0o600},
			[]string{"has mode 0755", "fix: chmod 700 DIR"}},
		{"state_json_0640", 0o700, map[string]os.FileMode{"state.json": 0o640, "deny.json": 0o600},
			[]string{"DIR/state.json has mode 0640", "fix: chmod 600 DIR/state.json"}},
		{"world_writable_file", 0o700, map[string]os.FileMode{"marks.log": 0o602},
			[]string{"DIR/marks.log has mode 0602", "fix: chmod 600 DIR/marks.log"}},
		{"subdirectory_0750", 0o700, map[string]os.FileMode{"sub/": 0o750},
			[]string{"DIR/sub has mode 0750", "fix: chmod 700 DIR/sub"}},
		{"everything", 0o711, map[string]os.FileMode{"a.json": 0o644, "b.json": 0o660},
			[]string{"DIR has mode 0711", "DIR/a.json has mode 0644", "DIR/b.json has mode 0660",
				"fix: chmod 700 DIR && chmod 600 DIR/a.json DIR/b.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := stateDir(t, tc.files)
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			err := CheckStateDir(dir)
			if !errors.Is(err, ErrInsecurePerm) {
				t.Fatalf("CheckStateDir = %v, want ErrInsecurePerm", err)
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "DIR", dir); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		err := CheckStateDir(filepath.Join(t.TempDir(), "none"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("missing directory: %v, want ErrNotExist", err)
		}
	})
	t.Run("not_a_directory", func(t *testing.T) {
		dir := stateDir(t, map[string]os.FileMode{"f": 0o600})
		if err := CheckStateDir(filepath.Join(dir, "f")); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("a file as state directory: %v", err)
		}
	})
	t.Run("fixed_by_the_fix", func(t *testing.T) {
		dir := stateDir(t, map[string]os.FileMode{"state.json": 0o644})
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if CheckStateDir(dir) == nil {
			t.Fatal("insecure directory passed")
		}
		// What the message says to run is enough.
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, "state.json"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := CheckStateDir(dir); err != nil {
			t.Fatalf("after the fix: %v", err)
		}
	})
}

func TestCheckStateDirWrongOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	for _, which := range []string{"", "state.json"} {
		dir := stateDir(t, map[string]os.FileMode{"state.json": 0o600})
		if err := os.Chown(filepath.Join(dir, which), 65534, 65534); err != nil {
			t.Skipf("chown: %v", err)
		}
		err := CheckStateDir(dir)
		if !errors.Is(err, ErrWrongOwner) {
			t.Fatalf("%q owned by uid 65534: %v, want ErrWrongOwner", which, err)
		}
		if want := "fix: chown -R 0 " + dir; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
		// Owners mixed: no user's start accepts it.
		if err := CheckStateDirModes(dir); !errors.Is(err, ErrWrongOwner) {
			t.Fatalf("only %q owned by uid 65534, for the directory's owner: %v, want ErrWrongOwner", which, err)
		}
	}
	// One owner, not the caller: fine for that owner, until a file is
	// open to others.
	dir := stateDir(t, map[string]os.FileMode{"state.json": 0o600})
	for _, p := range []string{dir, filepath.Join(dir, "state.json")} {
		if err := os.Chown(p, 65534, 65534); err != nil {
			t.Skipf("chown: %v", err)
		}
	}
	if err := CheckStateDirModes(dir); err != nil {
		t.Fatalf("all owned by uid 65534, for that owner: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, "state.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckStateDirModes(dir); !errors.Is(err, ErrInsecurePerm) {
		t.Fatalf("state.json 0644: %v, want ErrInsecurePerm", err)
	}
}
