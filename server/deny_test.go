package server

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// FuzzDecodeDenyList: the deny.json decoder never panics, and every error
// wraps errBadDenyList. Seeds also live in testdata/fuzz/FuzzDecodeDenyList/.
func FuzzDecodeDenyList(f *testing.F) {
	f.Add([]byte(`{"format":1,"entries":[]}`))
	f.Add([]byte(`{"format":1,"entries":[{"node":"a0000000-0000-0000-0000-000000000001","addr":"127.0.0.4"},{"addr":"::1"}]}`))
	f.Add([]byte(`{"format":1,"entries":[],"deleted":[{"node":"a0000000-0000-0000-0000-000000000001","name":"cn03","at":"2026-12-01T10:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, deleted, err := decodeDenyFile(data)
		if err != nil {
			if !errors.Is(err, errBadDenyList) {
				t.Fatalf("error does not wrap errBadDenyList: %v", err)
			}
			return
		}
		for i, e := range es {
			if e.Node == [16]byte{} && e.Addr == [16]byte{} {
				t.Fatalf("entry %d is empty", i)
			}
		}
		for i, d := range deleted {
			if !nodeNameRE.MatchString(d.Name) {
				t.Fatalf("deleted %d has name %q", i, d.Name)
			}
		}
	})
}

func TestDecodeDenyList(t *testing.T) {
	es, err := decodeDenyList([]byte(`{"format":1,"entries":[{"node":"a0000000-0000-0000-0000-000000000001"},{"addr":"::ffff:127.0.0.4"}]}`))
	if err != nil || len(es) != 2 || es[1].Addr.String() != "127.0.0.4" {
		t.Fatalf("%v %v", es, err)
	}
	for _, bad := range []string{``, `{"format":2,"entries":[]}`, `{"format":1,"entries":[{}]}`, `{"format":1,"entries":[{"addr":"x"}]}`,
		`{"format":1,"entries":[{"node":"x"}]}`, `{"format":1,"entries":[],"more":1}`, `{"format":1,"entries":[]} {}`,
		`{"format":1,"entries":[{"addr":"fe80::1%eth0"}]}`} {
		if _, err := decodeDenyList([]byte(bad)); !errors.Is(err, errBadDenyList) {
			t.Errorf("decodeDenyList(%q) = %v", bad, err)
		}
	}
}

// readUntil reads frames until one of type want, at most 16 (the pushes of
// a membership change interleave with it); a DenySet on the way fails.
func (lc *legacyClient) readUntil(want proto.Type) proto.Message {
	lc.t.Helper()
	for range 16 {
		m := lc.read()
		if m.Type() == proto.TypeDenySet {
			lc.t.Fatalf("got a whole DenySet waiting for %s", want)
		}
		if m.Type() == want {
			return m
		}
	}
	lc.t.Fatalf("no %s in 16 frames", want)
	return nil
}

// TestReusedAddressSendsDenyLift: giving a denied address to a node again
// (create node, set node Mom=) lifts it on the server, persisted, and
// tells each connected MOM with a DenyLift naming that address alone, not
// with the whole list.
func TestReusedAddressSendsDenyLift(t *testing.T) {
	s := startServer(t)
	setMode(t, s, "legacy")
	for i, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: fmt.Sprintf("n%d", i+2), Mom: ip})
	}
	a := legacyHello(t, s, "127.0.0.2", "n2")
	a.readUntil(proto.TypeNodeUpgraded)

	// Three denies make the list longer than the one lift.
	for _, name := range []string{"n3", "n4", "n5"} {
		mustAdmin(t, s, admin.OpDeleteNode, admin.NodeArgs{Name: name})
		a.readUntil(proto.TypeDeny)
	}
	addr := func(ip string) proto.Addr { return proto.AddrFrom(netip.MustParseAddr(ip)) }
	wantLift := func(ip string) {
		t.Helper()
		dl := a.readUntil(proto.TypeDenyLift).(*proto.DenyLift)
		if len(dl.Entries) != 1 || dl.Entries[0] != (proto.NodeAddr{Addr: addr(ip)}) {
			t.Fatalf("DenyLift %+v, want the address %s alone", dl.Entries, ip)
		}
		if s.deny.Revoked(proto.NodeID{}, addr(ip)) {
			t.Fatalf("%s still denied on the server", ip)
		}
	}

	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n3b", Mom: "127.0.0.3"})
	wantLift("127.0.0.3")

	// set node Mom= onto a denied address lifts it too, also for a node
	// that has not enrolled yet (which leaves its old address undenied:
	// it never held a key there).
	mustAdmin(t, s, admin.OpSetNode, admin.SetArgs{Name: "n3b", Attrs: []admin.Attr{{Name: "Mom", Value: "127.0.0.4"}}})
	wantLift("127.0.0.4")

	// Persisted: deny.json no longer has the lifted addresses, still has
	// the other one.
	es := persistedDeny(t, s.cfg.StateDir)
	got := map[proto.Addr]bool{}
	for _, e := range es {
		got[e.Addr] = true
	}
	if got[addr("127.0.0.3")] || got[addr("127.0.0.4")] || !got[addr("127.0.0.5")] {
		t.Fatalf("deny.json entries %+v", es)
	}
	// A create on an address that is not denied sends no DenyLift: the
	// next deny-related frame a MOM sees is the Deny of the next delete.
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n9", Mom: "127.0.0.9"})
	mustAdmin(t, s, admin.OpDeleteNode, admin.NodeArgs{Name: "n9"})
	for range 16 {
		m := a.read()
		if m.Type() == proto.TypeDenyLift || m.Type() == proto.TypeDenySet {
			t.Fatalf("unexpected %s", m.Type())
		}
		if m.Type() == proto.TypeDeny {
			return
		}
	}
	t.Fatal("no Deny after delete node n9")
}

// A deny entry records the keys held when it was made and is dropped once
// none of them is in the keyring: the denied node then holds only retired
// keys. Entries from files without keys are kept for good.
func TestDenyPrunedAfterItsKeysRetire(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	if _, err := Init(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.base.Close()
	addr := func(ip string) proto.Addr { return proto.AddrFrom(netip.MustParseAddr(ip)) }
	gone, moved, legacy := proto.NodeID{1}, addr("127.0.0.7"), addr("127.0.0.8")
	s.mu.Lock()
	s.denyLocked(gone, addr("127.0.0.6"))
	s.denyLocked(proto.NodeID{}, moved)
	s.deny.Deny(proto.NodeID{}, legacy) // as loaded from an old deny.json: no keys
	if n := s.pruneDenyLocked(); n != 0 {
		t.Fatalf("pruned %d entries while their key is active", n)
	}
	s.mu.Unlock()

	// The keys reload with the list.
	es := persistedDeny(t, dir)
	if len(es) != 3 {
		t.Fatalf("deny.json and deny.journal: %+v", es)
	}
	active := s.ring.Load().Active().ID
	for _, e := range es {
		if e.Addr == moved && (len(e.Keys) != 1 || e.Keys[0] != active) {
			t.Fatalf("entry %+v: keys %v, want [%s]", e.NodeAddr, e.Keys, active)
		}
	}

	// Rotate: the keyring now holds only a new key.
	k, err := keys.NewKey(rand.Reader, time.Now(), func(id keys.KeyID) bool { return id == active })
	if err != nil {
		t.Fatal(err)
	}
	k.State = keys.StateActive
	ring, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	s.ring.Store(ring)
	s.mu.Lock()
	n := s.pruneDenyLocked()
	s.mu.Unlock()
	if n != 3 { // node id, its address, the readdressed address
		t.Fatalf("pruned %d entries, want 3", n)
	}
	if s.deny.Revoked(gone, proto.Addr{}) || s.deny.Revoked(proto.NodeID{}, moved) {
		t.Fatal("a pruned entry is still denied")
	}
	if !s.deny.Revoked(proto.NodeID{}, legacy) {
		t.Fatal("an entry without keys was pruned")
	}
	if es = persistedDeny(t, dir); len(es) != 1 || es[0].Addr != legacy {
		t.Fatalf("deny list after pruning: %+v", es)
	}
}

// TestDenyTrafficCoalesced: a deny after a quiet interval is pushed at
// once; the denies and lifts that follow it within the interval are
// pushed together at its end, consecutive denies in one Deny frame and
// consecutive lifts in one DenyLift, in the order they were made. The
// interval is an hour here, and its end is the test's flush.
func TestDenyTrafficCoalesced(t *testing.T) {
	s := startServerWith(t, Config{DenyInterval: time.Hour})
	setMode(t, s, "legacy")
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"}
	for i, ip := range ips {
		mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: fmt.Sprintf("n%d", i+2), Mom: ip})
	}
	a := legacyHello(t, s, "127.0.0.2", "n2")
	a.readUntil(proto.TypeNodeUpgraded)
	addr := func(ip string) proto.Addr { return proto.AddrFrom(netip.MustParseAddr(ip)) }
	id := func(name string) proto.NodeID {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.reg.byName[name].id
	}
	deny := func(name, ip string) proto.NodeAddr { return proto.NodeAddr{Node: id(name), Addr: addr(ip)} }

	// The first deny goes at once: nothing was pushed within the interval.
	e3 := deny("n3", "127.0.0.3")
	mustAdmin(t, s, admin.OpDeleteNode, admin.NodeArgs{Name: "n3"})
	if d := a.readUntil(proto.TypeDeny).(*proto.Deny); len(d.Entries) != 1 || d.Entries[0] != e3 {
		t.Fatalf("first Deny %+v, want %+v alone", d.Entries, e3)
	}
	// These wait for the end of the interval; the server refuses at once.
	e4, e5, e6 := deny("n4", "127.0.0.4"), deny("n5", "127.0.0.5"), deny("n6", "127.0.0.6")
	mustAdmin(t, s, admin.OpDeleteNode, admin.NodeArgs{Name: "n4"})
	mustAdmin(t, s, admin.OpDeleteNode, admin.NodeArgs{Name: "n5"})
	mustAdmin(t, s, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n4b", Mom: "127.0.0.4"}) // lifts 127.0.0.4
	mustAdmin(t, s, admin.OpDeleteNode, admin.NodeArgs{Name: "n6"})
	if !s.deny.Revoked(e5.Node, proto.Addr{}) || !s.deny.Revoked(e6.Node, proto.Addr{}) || s.deny.Revoked(proto.NodeID{}, e4.Addr) {
		t.Fatal("the server's own deny list waits for the push")
	}
	s.mu.Lock()
	waiting := len(s.dp.pending)
	s.flushDenyLocked(time.Now())
	s.mu.Unlock()
	if waiting != 4 {
		t.Fatalf("%d denies and lifts waiting, want 4", waiting)
	}
	d := a.readUntil(proto.TypeDeny).(*proto.Deny)
	if len(d.Entries) != 2 || d.Entries[0] != e4 || d.Entries[1] != e5 {
		t.Fatalf("coalesced Deny %+v, want %+v then %+v", d.Entries, e4, e5)
	}
	m := a.read()
	if dl, ok := m.(*proto.DenyLift); !ok || len(dl.Entries) != 1 || dl.Entries[0] != (proto.NodeAddr{Addr: e4.Addr}) {
		t.Fatalf("after the Deny: %s %+v, want the DenyLift of %s", m.Type(), m, e4.Addr)
	}
	m = a.read()
	if d, ok := m.(*proto.Deny); !ok || len(d.Entries) != 1 || d.Entries[0] != e6 {
		t.Fatalf("after the DenyLift: %s %+v, want the Deny of %+v", m.Type(), m, e6)
	}
}

// TestDenyIntervalGrowsInABurst: after a quiet second a deny goes at once
// and the interval is the first; within a burst whose interval is over it
// goes at once and the interval doubles (up to ten times the first);
// within the interval it waits.
func TestDenyIntervalGrowsInABurst(t *testing.T) {
	s := startServerWith(t, Config{DenyInterval: time.Hour}) // the pusher never fires during the test
	e := proto.NodeAddr{Addr: proto.AddrFrom(netip.MustParseAddr("127.0.0.9"))}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.dp.last, s.dp.interval = now.Add(-11*time.Hour), 4*time.Hour
	s.queueDenyLocked(false, e)
	if len(s.dp.pending) != 0 || s.dp.interval != 0 {
		t.Fatalf("after a quiet spell: %d waiting, interval %s; want pushed at once, the first interval", len(s.dp.pending), s.dp.interval)
	}
	s.dp.last = time.Now().Add(-90 * time.Minute)
	s.queueDenyLocked(false, e)
	if len(s.dp.pending) != 0 || s.dp.interval != 2*time.Hour {
		t.Fatalf("interval over within a burst: %d waiting, interval %s; want pushed at once, interval 2h", len(s.dp.pending), s.dp.interval)
	}
	s.queueDenyLocked(true, e)
	if len(s.dp.pending) != 1 {
		t.Fatalf("within the interval: %d waiting, want 1", len(s.dp.pending))
	}
	for range 5 {
		s.growDenyIntervalLocked()
	}
	if s.dp.interval != 10*time.Hour {
		t.Fatalf("interval grew to %s, want at most 10h", s.dp.interval)
	}
}

// persistedDeny is the deny list as deny.json and deny.journal hold it,
// read without opening the journal (the server may be running).
func persistedDeny(t *testing.T, dir string) []denyRecord {
	t.Helper()
	b := persistedDenyBook(t, dir)
	var out []denyRecord
	for _, e := range b.sortedEntries() {
		out = append(out, denyRecord{NodeAddr: e, Keys: b.entries[e]})
	}
	return out
}

// persistedDenyBook is the deny book as deny.json and deny.journal hold
// it; any finding of the journal's inspection fails the test.
func persistedDenyBook(t *testing.T, dir string) *denyBook {
	t.Helper()
	js, err := store.ReadStateJournal(filepath.Join(dir, denyJournalFile),
		store.JournalOptions{Snapshot: filepath.Join(dir, denyFile), Expect: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(js.Findings) > 0 {
		t.Fatalf("deny journal: %+v", js.Findings)
	}
	data, err := os.ReadFile(filepath.Join(dir, denyFile))
	if err != nil {
		t.Fatal(err)
	}
	b, err := denyBookOf(data)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range js.Records {
		if err := b.applyRecord(r.Kind, r.Key, r.Value, r.Deleted); err != nil {
			t.Fatalf("deny journal record %d: %v", i, err)
		}
	}
	return b
}
