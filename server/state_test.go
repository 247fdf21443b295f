package server

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/statelock"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/statecheck"
)

func initDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s")
	if _, err := Init(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Init never overwrites an identity or a keyring; Reinitialize moves the
// old files into a backup first.
func TestInitRefusesAndReinitializeBacksUp(t *testing.T) {
	dir := initDir(t)
	ident, _ := os.ReadFile(filepath.Join(dir, identityFile))
	if err := os.Remove(filepath.Join(dir, stateFile)); err != nil {
		t.Fatal(err)
	}
	_, err := Init(dir, nil, time.Now())
	if !errors.Is(err, ErrInitialized) || !strings.Contains(err.Error(), identityFile) || !strings.Contains(err.Error(), "--reinitialize") {
		t.Fatalf("Init over an identity: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, identityFile)); string(got) != string(ident) {
		t.Fatal("a refused Init changed the identity")
	}
	fp, backup, err := Reinitialize(dir, nil, time.Now())
	if err != nil || fp == "" || backup == "" {
		t.Fatalf("Reinitialize: %q %q %v", fp, backup, err)
	}
	if got, _ := os.ReadFile(filepath.Join(backup, identityFile)); string(got) != string(ident) {
		t.Fatal("the backup does not hold the old identity")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, identityFile)); string(got) == string(ident) {
		t.Fatal("Reinitialize kept the old identity")
	}
}

// Init and New refuse a directory a running server holds.
func TestInitAndNewRefuseLockedDir(t *testing.T) {
	dir := initDir(t)
	lock, err := statelock.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if _, err := Init(dir, nil, time.Now()); !errors.Is(err, statelock.ErrLocked) {
		t.Fatalf("Init on a locked directory: %v", err)
	}
	if _, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()}); !errors.Is(err, statelock.ErrLocked) {
		t.Fatalf("New on a locked directory: %v", err)
	}
}

// A directory that does not exist is not initialized, and the message
// says so without advising anything that would overwrite keys.
func TestNewOnMissingDir(t *testing.T) {
	_, err := New(Config{StateDir: filepath.Join(t.TempDir(), "none"), Listen: "127.0.0.1:0", Log: quietLog()})
	if !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("New on a missing directory: %v", err)
	}
}

// Mom= refuses every address no node can hold, at create and set.
func TestNodeAddrsRefused(t *testing.T) {
	s := newTestServer(t, initDir(t), &fakeClock{t: time.Now()})
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "a", Mom: "127.0.0.2"})
	for _, a := range []string{"255.255.255.255", "0.0.0.0", "224.0.0.1", "240.1.2.3", "0.0.0.7", "ff02::1", "::"} {
		if _, err := adminCall(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "x", Mom: a}); admin.CodeOf(err) != admin.CodeBadValue ||
			!strings.Contains(err.Error(), proto.ErrNotNodeAddr.Error()) {
			t.Errorf("create node Mom=%s: %v", a, err)
		}
		if _, err := adminCall(t, s, admin.OpSetNode, admin.SetArgs{Name: "a", Attrs: []admin.Attr{{Name: "Mom", Value: a}}}); admin.CodeOf(err) != admin.CodeBadValue {
			t.Errorf("set node Mom=%s: %v", a, err)
		}
	}
}

// A lost deny list is withheld (no DenySet) until the recovery rotation
// completes, and deny.json is not written meanwhile.
func TestDenyWithheldUntilRotationCompletes(t *testing.T) {
	dir := initDir(t)
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := newTestServer(t, dir, clock)
	mustAdmin(t, s, admin.OpSetServer, admin.SetArgs{Attrs: []admin.Attr{{Name: "key_grace", Value: "1s"}}})
	s.base.Close()
	if err := os.Remove(filepath.Join(dir, denyFile)); err != nil {
		t.Fatal(err)
	}
	s = newTestServer(t, dir, clock)
	if !s.base.State.Has(statecheck.StepRotateWithholdDeny) || !s.denyWithheld.Load() || s.denySet() != nil {
		t.Fatal("a lost deny list is not withheld")
	}
	s.mu.Lock()
	s.denyLocked(proto.NodeID{7}, proto.Addr{})
	s.mu.Unlock()
	if _, err := os.Stat(filepath.Join(dir, denyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("deny.json written while withheld: %v", err)
	}
	for i := 0; i < 10 && s.denyWithheld.Load(); i++ {
		clock.add(time.Minute)
		tick(t, s)
	}
	if s.denyWithheld.Load() || s.denySet() == nil || len(s.denySet().Entries) != 1 {
		t.Fatalf("the deny list is still withheld after the rotation: %+v", s.rot.info())
	}
	if _, err := os.Stat(filepath.Join(dir, denyFile)); err != nil {
		t.Fatalf("deny.json after the recovery: %v", err)
	}
}

// FloorLookup is answered only for a PING session with two stamps and a
// recent PING.
func TestFloorAnswer(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := newTestServer(t, initDir(t), clock)
	n := &node{id: proto.NodeID{9}}
	mc := &session{node: n}
	s.mu.Lock()
	s.conns[n.id] = mc
	s.mu.Unlock()
	ask := func() *proto.FloorAnswer { return s.floorAnswer(&proto.FloorLookup{ID: 3, Node: n.id}) }
	if a := ask(); a.Status != proto.FloorUnknown || a.ID != 3 {
		t.Fatalf("no stamps: %+v", a)
	}
	s.mu.Lock()
	mc.recordStamp(100, clock.Now())
	mc.recordStamp(200, clock.Now())
	s.mu.Unlock()
	if a := ask(); a.Status != proto.FloorAttested || a.Floor != 100 {
		t.Fatalf("two stamps: %+v", a)
	}
	clock.add(time.Hour)
	if a := ask(); a.Status != proto.FloorUnknown {
		t.Fatalf("last PING an hour ago: %+v", a)
	}
}
