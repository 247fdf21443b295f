package server

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/rotation"
)

// fakeClock is a settable clock for in-process servers.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestServer(t *testing.T, dir string, clock *fakeClock) *Server {
	t.Helper()
	s, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.base.Close() })
	return s
}

func tick(t *testing.T, s *Server) {
	t.Helper()
	if err := s.rot.event(func(m *rotation.Machine, now time.Time) ([]rotation.Action, error) { return m.Tick(now) }); err != nil {
		t.Fatal(err)
	}
}

// TestRotationResumesAfterRestart: a server that stops in the grace period
// finishes the rotation after a restart, from what it persisted.
func TestRotationResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if _, err := Init(dir, rand.Reader, clock.Now()); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, dir, clock)
	old := s.ring.Load().Active().ID
	info, err := s.rotateKey()
	if err != nil {
		t.Fatal(err)
	}
	if info.Phase != "grace" || info.OldKey != old.String() {
		t.Fatalf("rotate with no MOM connected: %+v", info)
	}
	s.base.Close()

	// "Restart": a new server from the same directory.
	s = newTestServer(t, dir, clock)
	if in := s.rot.info(); in.Phase != "grace" || in.Seq != 1 {
		t.Fatalf("after restart: %+v", in)
	}
	ring := s.ring.Load()
	if ring.Active().ID.String() != info.NewKey || ring.Lookup(old) == nil || ring.Lookup(old).State != keys.StatePrevious {
		t.Fatalf("keyring after restart: %v", ring.Keys())
	}
	clock.add(31 * time.Second) // key_grace defaults to 30s
	tick(t, s)
	if in := s.rot.info(); in.Phase != "idle" {
		t.Fatalf("after the grace period: %+v", in)
	}
	onDisk, err := keystore.LoadKeyring(filepath.Join(dir, keyringFile))
	if err != nil || onDisk.Len() != 1 || onDisk.Active().ID.String() != info.NewKey {
		t.Fatalf("persisted keyring %v (%v)", onDisk, err)
	}
}

// TestRotationSaveFailure: a rotation step that cannot be persisted is
// reported, nothing is half-done, and the next attempt works.
func TestRotationSaveFailure(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if _, err := Init(dir, rand.Reader, clock.Now()); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, dir, clock)
	before := s.ring.Load().Active().ID
	// The journal's descriptor closed: the append fails. And a directory
	// where rotation.journal is: reading it again from disk fails too.
	journal := filepath.Join(dir, rotationJournalFile)
	if err := s.rot.store.journal.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(journal, journal+".aside"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(journal, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := s.rotateKey()
	if err == nil || !strings.Contains(err.Error(), rotationJournalFile) {
		t.Fatalf("rotate with an unwritable record: %v", err)
	}
	if ring := s.ring.Load(); ring.Len() != 1 || ring.Active().ID != before {
		t.Fatalf("keyring changed by a failed rotation: %v", ring.Keys())
	}
	if in := s.rot.info(); in.Error == "" {
		t.Fatalf("list key does not report the halted rotation: %+v", in)
	}
	if _, err := s.rotateKey(); err == nil || !strings.Contains(err.Error(), "halted") {
		t.Fatalf("rotate while the state cannot be read: %v", err)
	}
	if err := os.Remove(journal); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(journal+".aside", journal); err != nil {
		t.Fatal(err)
	}
	info, err := s.rotateKey()
	if err != nil || info.Phase != "grace" || info.Seq != 1 || info.OldKey != before.String() || info.Error != "" {
		t.Fatalf("rotate after the fix: %+v %v", info, err)
	}
}

// TestExportAndActivateKey: export writes a new 0400 file and refuses to
// overwrite; activate refuses a key that is not being distributed.
func TestExportAndActivateKey(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if _, err := Init(dir, rand.Reader, clock.Now()); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, dir, clock)
	id := s.ring.Load().Active().ID
	file := filepath.Join(t.TempDir(), "k")
	if _, err := s.exportKey(adminKeyArgs(id.String(), "relative/path")); err == nil {
		t.Fatal("export to a relative path succeeded")
	}
	if _, err := s.exportKey(adminKeyArgs(id.String(), file)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o400 {
		t.Fatalf("key file mode %v (%v)", fi.Mode(), err)
	}
	k, err := keystore.ImportKeyFile(file)
	if err != nil || k.ID != id {
		t.Fatalf("exported file: %v %v", k, err)
	}
	if _, err := s.exportKey(adminKeyArgs(id.String(), file)); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("export over an existing file: %v", err)
	}
	if _, err := s.exportKey(adminKeyArgs("0badc0de", file+"2")); err == nil || !strings.Contains(err.Error(), "no cluster key") {
		t.Fatalf("export of an unknown key: %v", err)
	}
	// The active key: activating it again is a no-op.
	if ki, err := s.activateKey(adminKeyArgs(id.String(), "")); err != nil || ki.State != "active" {
		t.Fatalf("activate the active key: %v %v", ki, err)
	}
	s.setServer(adminAttrs("key_distribution", "manual"))
	info, err := s.rotateKey()
	if err != nil || info.Phase != "distributing" || info.Distribution != "manual" {
		t.Fatalf("manual rotate: %+v %v", info, err)
	}
	if _, err := s.activateKey(adminKeyArgs("0badc0de", "")); err == nil {
		t.Fatal("activate of an unknown key succeeded")
	}
	ki, err := s.activateKey(adminKeyArgs(info.NewKey, ""))
	if err != nil || ki.State != "active" || s.rot.info().Phase != "grace" {
		t.Fatalf("activate the distributed key: %v %v %+v", ki, err, s.rot.info())
	}
}

func adminKeyArgs(id, file string) admin.KeyArgs { return admin.KeyArgs{ID: id, File: file} }

func adminAttrs(name, value string) []admin.Attr { return []admin.Attr{{Name: name, Value: value}} }
