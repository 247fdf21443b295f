package session

import (
	"errors"
	"testing"

	"github.com/momgate/momgate/proto"
)

// TestMarks: once a peer is marked, a plain swap from its node id or its
// address is a downgrade and an initiator may not fall back to it; marks
// survive a snapshot and restore; Forget is the administrator's rollback.
func TestMarks(t *testing.T) {
	n1, n2 := proto.NodeID{1}, proto.NodeID{2}
	a1, a2 := addr("127.0.0.2"), addr("127.0.0.3")
	m := NewMarks(nil)
	if err := m.CheckPlain(n1, a1); err != nil || !m.MayFallback(a1) {
		t.Fatalf("unmarked peer: %v", err)
	}
	if !m.Mark(n1, a1) || m.Mark(n1, a1) {
		t.Fatal("Mark does not report what is new")
	}
	for name, c := range map[string]struct {
		node proto.NodeID
		addr proto.Addr
	}{"same node": {n1, a2}, "same address": {n2, a1}} {
		if err := m.CheckPlain(c.node, c.addr); !errors.Is(err, ErrDowngrade) {
			t.Errorf("%s: %v, want ErrDowngrade", name, err)
		}
	}
	if err := m.CheckPlain(n2, a2); err != nil {
		t.Fatalf("other peer: %v", err)
	}
	if m.MayFallback(a1) || !m.MayFallback(a2) {
		t.Fatal("fallback to a marked address allowed")
	}
	m.Mark(proto.NodeID{}, a2) // the server said: this address speaks sealed sessions
	restored := NewMarks(m.Snapshot())
	for _, c := range []struct {
		node proto.NodeID
		addr proto.Addr
	}{{n1, proto.Addr{}}, {proto.NodeID{}, a1}, {proto.NodeID{}, a2}} {
		if err := restored.CheckPlain(c.node, c.addr); !errors.Is(err, ErrDowngrade) {
			t.Errorf("after restore, %x %s: %v", c.node[:1], c.addr, err)
		}
	}
	if err := restored.CheckPlain(proto.NodeID{}, proto.Addr{}); err != nil {
		t.Fatalf("zero node and address marked: %v", err)
	}
	restored.Forget(n1, a1)
	if err := restored.CheckPlain(n1, a1); err != nil || !restored.MayFallback(a1) {
		t.Fatalf("after Forget: %v", err)
	}
}
