package daemon

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/internal/statelock"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/statecheck"
)

func openTestBase(t *testing.T, dir string) *Base {
	t.Helper()
	st, err := OpenState(dir, statecheck.RoleMom, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenBase(BaseConfig{State: st, Log: quietLog(), Audit: audit.New(audit.Config{Out: io.Discard}), Now: time.Now,
		Freshness: time.Minute, Keys: keys.NewHolder(keys.NewKeyring()), Revoker: &ping.DenyList{}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A first start writes the ceiling and the mark store; the manifest then
// lists them, and deleting the mark log afterwards is a recovery with the
// floor, counted; a second opener is refused while the first holds the
// lock.
func TestOpenStateRecoversAndLocks(t *testing.T) {
	dir := privateDir(t)
	b := openTestBase(t, dir)
	if _, err := OpenState(dir, statecheck.RoleMom, quietLog()); !errors.Is(err, statelock.ErrLocked) {
		t.Fatalf("second OpenState: %v", err)
	}
	if err := b.State.SyncManifest(false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	for _, f := range []string{CeilingFile, store.MarkLogName, store.MarkSnapName, store.ManifestName} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s after a first start: %v", f, err)
		}
	}
	if err := os.Remove(filepath.Join(dir, store.MarkLogName)); err != nil {
		t.Fatal(err)
	}
	b = openTestBase(t, dir)
	defer b.Close()
	if !b.State.Has(statecheck.StepMarksFloor) || !b.Verifier.Guard.Recovering() {
		t.Fatalf("a lost mark log is not recovered with the floor: %+v", b.State.Verdict)
	}
	if n := b.State.Recoveries()["marks_floor"]; n != 1 {
		t.Fatalf("marks_floor recoveries %v, want 1", n)
	}
}

// A refusal releases the lock and changes no file.
func TestOpenStateRefusalTouchesNothing(t *testing.T) {
	dir := privateDir(t)
	for _, f := range []string{"mom.json", "keyring.json"} { // enrolled, without its identity
		if err := os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := OpenState(dir, statecheck.RoleMom, quietLog())
	if !errors.Is(err, statecheck.ErrStateLost) {
		t.Fatalf("OpenState without the identity: %v", err)
	}
	lock, err := statelock.Acquire(dir)
	if err != nil {
		t.Fatalf("the refusal kept the lock: %v", err)
	}
	lock.Release()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 { // mom.json, keyring.json, lock
		t.Fatalf("the refusal left %d files", len(entries))
	}
}

// TestOpenStateRefusesGroupAccess: a state directory group or others can
// reach is refused before anything is written in it, not even the lock.
func TestOpenStateRefusesGroupAccess(t *testing.T) {
	dir := privateDir(t)
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	_, err := OpenState(dir, statecheck.RoleMom, quietLog())
	if !errors.Is(err, statefile.ErrInsecurePerm) || !strings.Contains(err.Error(), "chmod 700 "+dir) {
		t.Fatalf("OpenState of a 0750 directory: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("the refusal wrote %v", ents)
	}
}
