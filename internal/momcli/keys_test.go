package momcli

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/internal/statelock"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/mom"
)

// offlineMOM makes a MOM state directory holding one active key, with no
// MOM running.
func offlineMOM(t *testing.T) (dir string, active *keys.Key) {
	t.Helper()
	dir = t.TempDir()
	k, err := keys.NewKey(rand.Reader, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	k.State = keys.StateActive
	ring, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := keystore.SaveKeyring(mom.KeyringPath(dir), ring); err != nil {
		t.Fatal(err)
	}
	return dir, k
}

func exportedKey(t *testing.T) (*keys.Key, string) {
	t.Helper()
	k, err := keys.NewKey(rand.Reader, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "cluster.key")
	if err := keystore.ExportKeyFile(file, k); err != nil {
		t.Fatal(err)
	}
	return k, file
}

func TestImportKeyRefusesLooseFile(t *testing.T) {
	dir, _ := offlineMOM(t)
	_, file := exportedKey(t)
	loose := file + ".copy"
	data, _ := os.ReadFile(file)
	if err := os.WriteFile(loose, data, 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(loose, 0o640)
	var out bytes.Buffer
	err := ImportKey(context.Background(), dir, loose, &out, false)
	if err == nil {
		t.Fatal("imported a group-readable key file")
	}
	for _, want := range []string{loose, "0640", "chmod 600 " + loose} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	ring, _ := keystore.LoadKeyring(mom.KeyringPath(dir))
	if ring.Len() != 1 {
		t.Fatalf("refused import changed the keyring: %v", ring.Keys())
	}
}

func TestImportAndActivateOffline(t *testing.T) {
	dir, old := offlineMOM(t)
	k, file := exportedKey(t)
	var out bytes.Buffer
	if err := ImportKey(context.Background(), dir, file, &out, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "imported key "+k.ID.String()+" as next") || !strings.Contains(out.String(), "not running") {
		t.Fatalf("output %q", out.String())
	}
	ring, err := keystore.LoadKeyring(mom.KeyringPath(dir))
	if err != nil || ring.Next() == nil || ring.Next().ID != k.ID || ring.Next().Secret != k.Secret {
		t.Fatalf("keyring after import: %v %v", ring, err)
	}
	// Importing again changes nothing.
	out.Reset()
	if err := ImportKey(context.Background(), dir, file, &out, true); err != nil || !strings.Contains(out.String(), `"running": false`) {
		t.Fatalf("second import: %v %q", err, out.String())
	}
	if err := ActivateKey(context.Background(), dir, "0badc0de", &out, false); err == nil || !strings.Contains(err.Error(), "import it first") {
		t.Fatalf("activate a key not held: %v", err)
	}
	if err := ActivateKey(context.Background(), dir, "not-hex", &out, false); err == nil {
		t.Fatal("activate with a malformed id succeeded")
	}
	out.Reset()
	if err := ActivateKey(context.Background(), dir, k.ID.String(), &out, false); err != nil || !strings.Contains(out.String(), "is now active") {
		t.Fatalf("activate: %v %q", err, out.String())
	}
	ring, _ = keystore.LoadKeyring(mom.KeyringPath(dir))
	if ring.Active().ID != k.ID || ring.Lookup(old.ID) == nil || ring.Lookup(old.ID).State != keys.StatePrevious {
		t.Fatalf("keyring after activate: %v", ring.Keys())
	}
}

func TestImportKeyNotAMOMDir(t *testing.T) {
	_, file := exportedKey(t)
	err := ImportKey(context.Background(), t.TempDir(), file, &bytes.Buffer{}, false)
	if err == nil || !strings.Contains(err.Error(), "MOM state directory") {
		t.Fatalf("import into an empty directory: %v", err)
	}
}

// A MOM starting or running holds the directory's lock: the offline
// import does not write under it.
func TestImportKeyOfflineRefusesLockedDir(t *testing.T) {
	dir, _ := offlineMOM(t)
	_, file := exportedKey(t)
	lock, err := statelock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	before, _ := os.ReadFile(mom.KeyringPath(dir))
	err = ImportKey(context.Background(), dir, file, &bytes.Buffer{}, false)
	if !errors.Is(err, statelock.ErrLocked) {
		t.Fatalf("offline import on a locked directory: %v", err)
	}
	if after, _ := os.ReadFile(mom.KeyringPath(dir)); string(after) != string(before) {
		t.Fatal("the refused import changed the keyring")
	}
}
