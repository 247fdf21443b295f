package ping

import (
	"net/netip"
	"testing"

	"github.com/momgate/momgate/proto"
)

// An address denied under the keys of the day stays usable under keys
// created later; a node id is denied under every key.
func TestDenyUnderKeys(t *testing.T) {
	d := &DenyList{}
	old, fresh := addr("127.0.0.5"), addr("127.0.0.6")
	d.DenyUnder(nodeID(1), old, []uint32{10, 11})
	cases := []struct {
		name string
		node proto.NodeID
		addr proto.Addr
		key  uint32
		want bool
	}{
		{"deleted node, old key", nodeID(1), old, 10, true},
		{"deleted node id from elsewhere, new key", nodeID(1), fresh, 99, true},
		{"anyone at the address, old key", nodeID(2), old, 11, true},
		{"new node at the address, new key", nodeID(2), old, 99, false},
		{"other address", nodeID(3), fresh, 10, false},
	}
	for _, tc := range cases {
		if got := d.RevokedUnder(tc.node, tc.addr, tc.key); got != tc.want {
			t.Errorf("%s: RevokedUnder = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !d.Revoked(nodeID(2), old) {
		t.Error("Revoked (any key) ignores a key-scoped address deny")
	}
	// Denying again adds keys; an every-key deny absorbs scoped ones.
	d.DenyUnder(proto.NodeID{}, old, []uint32{12})
	if ids, ok := d.AddrKeys(old); !ok || len(ids) != 3 {
		t.Fatalf("AddrKeys after a second deny = %v %v", ids, ok)
	}
	d.Deny(proto.NodeID{}, old)
	d.DenyUnder(proto.NodeID{}, old, []uint32{13})
	if ids, ok := d.AddrKeys(old); !ok || ids != nil || !d.RevokedUnder(nodeID(2), old, 99) {
		t.Fatalf("every-key deny narrowed to %v", ids)
	}
}

// TestDenyListHold: a held list refuses everyone under every key, while
// what it reports about its entries (for applying the server's DenySet)
// is unchanged; Release restores the list's own verdicts.
func TestDenyListHold(t *testing.T) {
	d := &DenyList{}
	denied, other := nodeID(2), nodeID(3)
	d.Deny(denied, addr("127.0.0.2"))
	d.Hold()
	if !d.Held() || !d.RevokedUnder(other, addr("127.0.0.3"), 7) {
		t.Fatal("a held list admits a peer")
	}
	if d.Revoked(other, addr("127.0.0.3")) || !d.Revoked(denied, proto.Addr{}) || len(d.Nodes()) != 1 {
		t.Fatal("the hold changed what the list reports about its entries")
	}
	if d.Listed(other, addr("127.0.0.3"), 7) || !d.Listed(denied, proto.Addr{}, 7) {
		t.Fatal("Listed follows the hold")
	}
	d.Release()
	if d.Held() || d.RevokedUnder(other, addr("127.0.0.3"), 7) || !d.RevokedUnder(denied, proto.Addr{}, 7) {
		t.Fatal("Release did not restore the list's verdicts")
	}
}

// Every change counts in the generation; reads and the hold do not.
func TestDenyGeneration(t *testing.T) {
	var d DenyList
	if d.Generation() != 0 {
		t.Fatalf("new list at generation %d", d.Generation())
	}
	a := addr("10.0.0.1")
	d.Deny(proto.NodeID{1}, a)
	d.DenyUnder(proto.NodeID{}, a, []uint32{7})
	_ = d.Revoked(proto.NodeID{1}, a)
	d.Hold()
	d.Release()
	d.Allow(proto.NodeID{1}, a)
	if g := d.Generation(); g != 3 {
		t.Fatalf("generation %d after three changes", g)
	}
}

// Apply is the changes made one by one, in order, counted one each in
// Generation.
func TestDenyApplyAsOneByOne(t *testing.T) {
	n1, n2 := proto.NodeID{1}, proto.NodeID{2}
	a1, a2 := proto.AddrFrom(netip.MustParseAddr("127.0.0.1")), proto.AddrFrom(netip.MustParseAddr("127.0.0.2"))
	changes := []DenyChange{
		{Node: n1, Addr: a1, KeyIDs: []uint32{7}},
		{Addr: a1, KeyIDs: []uint32{8}},
		{Node: n2, Addr: a2},
		{Node: n2, Lift: true},
	}
	var one, batch DenyList
	for _, c := range changes {
		if c.Lift {
			one.Allow(c.Node, c.Addr)
		} else {
			one.DenyUnder(c.Node, c.Addr, c.KeyIDs)
		}
	}
	batch.Apply(changes)
	batch.Apply(nil)
	if batch.Generation() != uint64(len(changes)) || one.Generation() != batch.Generation() {
		t.Fatalf("generations %d and %d, want %d", one.Generation(), batch.Generation(), len(changes))
	}
	for _, l := range []*DenyList{&one, &batch} {
		ids, ok := l.AddrKeys(a1)
		if !ok || len(ids) != 2 || !l.Revoked(n1, proto.Addr{}) || l.Revoked(n2, proto.Addr{}) {
			t.Fatalf("after the changes: %v %v, n1 %v, n2 %v", ids, ok, l.Revoked(n1, proto.Addr{}), l.Revoked(n2, proto.Addr{}))
		}
		if ids, ok := l.AddrKeys(a2); !ok || ids != nil {
			t.Fatalf("a2 denied under %v (%v), want every key", ids, ok)
		}
	}
}
