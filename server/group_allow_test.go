package server

import (
	"errors"
	"testing"
)

// TestAllowPeerOnlyCurrentMembers: the replication listener lets through a
// certified peer only while its name is in the committed member list; a
// member removed by delete server is refused.
func TestAllowPeerOnlyCurrentMembers(t *testing.T) {
	g := newGroupState()
	if err := g.allowPeer("s9"); err != nil {
		t.Fatalf("before any member list is known: %v", err)
	}
	g.members["s1"] = memberRecord{Name: "s1"}
	g.members["s2"] = memberRecord{Name: "s2"}
	for _, name := range []string{"s1", "s2"} {
		if err := g.allowPeer(name); err != nil {
			t.Errorf("member %s refused: %v", name, err)
		}
	}
	delete(g.members, "s2")
	if err := g.allowPeer("s2"); !errors.Is(err, errRemovedMember) {
		t.Errorf("deleted member s2: got %v, want errRemovedMember", err)
	}
}
