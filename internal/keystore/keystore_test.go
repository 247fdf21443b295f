package keystore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/keys"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testKey makes a key with a fixed id and a secret derived from it.
func testKey(id keys.KeyID, state keys.State, created time.Time) *keys.Key {
	k := &keys.Key{ID: id, State: state, Created: created}
	for i := range k.Secret {
		k.Secret[i] = byte(id) ^ byte(i*7)
	}
	return k
}

func sampleRing(t *testing.T) *keys.Keyring {
	t.Helper()
	r := keys.NewKeyring()
	for _, k := range []*keys.Key{
		testKey(0x0a1b2c3d, keys.StateActive, t0),
		testKey(0x0a1b2c3e, keys.StateNext, t0.Add(time.Hour)),
		testKey(0x0a1b2c3c, keys.StatePrevious, t0.Add(-time.Hour)),
	} {
		var err error
		if r, err = r.WithKey(k); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// sameRing compares rings by their encoding: id, state, secret and
// creation time of every key.
func sameRing(t *testing.T, got, want *keys.Keyring) {
	t.Helper()
	g, err1 := keys.EncodeKeyring(got)
	w, err2 := keys.EncodeKeyring(want)
	if err1 != nil || err2 != nil || !bytes.Equal(g, w) {
		t.Fatalf("keyring\n%s\nwant\n%s (%v %v)", g, w, err1, err2)
	}
}

func testIdentity(t *testing.T, seed byte) *keys.Identity {
	t.Helper()
	id, err := keys.GenerateIdentity(bytes.NewReader(bytes.Repeat([]byte{seed}, 64)))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSaveLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keyring.json")
	// An old, world-readable file is replaced, not rewritten in place.
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sampleRing(t)
	if err := SaveKeyring(path, r); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring saved with mode %04o", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("directory holds %d entries after save (temp file left?)", len(ents))
	}
	got, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	sameRing(t, got, r)
	if err := SaveKeyring(filepath.Join(dir, "missing", "k.json"), r); err == nil {
		t.Fatal("save into a missing directory succeeded")
	}
}

func TestLoadKeyringRefusesOpenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keyring.json")
	if err := SaveKeyring(path, sampleRing(t)); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o644, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		r, err := LoadKeyring(path)
		if r != nil || !errors.Is(err, statefile.ErrInsecurePerm) {
			t.Fatalf("mode %04o: %v, %v", mode, r, err)
		}
		// The error names the file, its mode and the fix.
		for _, want := range []string{path, fmt.Sprintf("%04o", mode), "chmod 600 " + path} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("mode %04o: error %q does not mention %q", mode, err, want)
			}
		}
	}
}

func TestLoadKeyringRefusesOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := SaveKeyring(path, sampleRing(t)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Skipf("chown: %v", err)
	}
	r, err := LoadKeyring(path)
	if r != nil || !errors.Is(err, statefile.ErrWrongOwner) || !strings.Contains(err.Error(), path) {
		t.Fatalf("file of uid 65534: %v, %v", r, err)
	}
}

func TestLoadKeyringErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"format":1,"keys":[],"x":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring(bad); !errors.Is(err, keys.ErrInvalidKeyFile) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("invalid file: %v", err)
	}
	missing := filepath.Join(dir, "missing.json")
	if _, err := LoadKeyring(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestExportImportKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.json")
	k := testKey(0x0a1b2c3d, keys.StateNext, t0)
	if err := ExportKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o400 {
		t.Fatalf("exported with mode %04o, want 0400", fi.Mode().Perm())
	}
	got, err := ImportKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != k.ID || got.State != k.State || got.Secret != k.Secret || !got.Created.Equal(k.Created) {
		t.Fatalf("imported %+v", got)
	}
	// Never overwrites.
	if err := ExportKeyFile(path, testKey(5, keys.StateNext, t0)); !errors.Is(err, os.ErrExist) {
		t.Fatalf("export over an existing file: %v", err)
	}
	if again, err := ImportKeyFile(path); err != nil || again.ID != k.ID {
		t.Fatalf("existing export changed: %v, %v", again, err)
	}
	if err := ExportKeyFile(filepath.Join(dir, "missing", "k.json"), k); err == nil {
		t.Fatal("export into a missing directory succeeded")
	}
	// Readable by others: refused.
	for _, mode := range []os.FileMode{0o444, 0o440, 0o404} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if k, err := ImportKeyFile(path); k != nil || !errors.Is(err, statefile.ErrInsecurePerm) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Fatalf("import of a %04o file: %v, %v", mode, k, err)
		}
	}
	// Invalid content names the path.
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"format":1,"key":{"id":"0a1b2c3d","state":"retired","secret":"","created":"2026-03-01T12:00:00Z"}}`), 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := ImportKeyFile(bad); !errors.Is(err, keys.ErrInvalidKeyFile) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("retired key file: %v", err)
	}
}

func TestIdentitySaveLoad(t *testing.T) {
	id := testIdentity(t, 1)
	path := filepath.Join(t.TempDir(), "identity.json")
	if err := SaveIdentity(path, id); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved identity: %v, mode %v", err, fi.Mode())
	}
	got, err := LoadIdentity(path)
	if err != nil || *got != *id {
		t.Fatalf("load: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(path); !errors.Is(err, statefile.ErrInsecurePerm) || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Fatalf("0644 identity: %v", err)
	}
	if err := SaveIdentity(filepath.Join(t.TempDir(), "no", "id.json"), id); err == nil {
		t.Fatal("save into a missing directory succeeded")
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"format":1,"public":"","private":""}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(bad); !errors.Is(err, keys.ErrInvalidKeyFile) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("invalid identity: %v", err)
	}
}

// A FIFO or a symlink where a key file should be is refused at once, not
// waited on or followed.
func TestLoadRefusesFIFOAndSymlink(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	target := filepath.Join(dir, "keyring.json")
	if err := SaveKeyring(target, sampleRing(t)); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, link} {
		if _, err := LoadKeyring(path); !errors.Is(err, statefile.ErrNotRegular) {
			t.Errorf("LoadKeyring(%s): %v, want ErrNotRegular", path, err)
		}
		if _, err := ImportKeyFile(path); !errors.Is(err, statefile.ErrNotRegular) {
			t.Errorf("ImportKeyFile(%s): %v, want ErrNotRegular", path, err)
		}
		if _, err := LoadIdentity(path); !errors.Is(err, statefile.ErrNotRegular) {
			t.Errorf("LoadIdentity(%s): %v, want ErrNotRegular", path, err)
		}
	}
}
