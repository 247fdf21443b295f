package member

import (
	"bytes"
	"errors"
	"testing"
)

// An existing server's state adopted as a group: the state is there at
// once, writes commit on top of it, and a member added later gets both.
func TestAdoptExistingState(t *testing.T) {
	old := newTestState()
	c, _ := createNode("before-ha")
	apply(t, old, c)
	snap, err := old.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}

	g := newGroup(t)
	// The replication address is fixed before the member runs.
	g.nodes["s1"] = &testNode{name: "s1", ip: "127.0.0.1", addr: "127.0.0.1:" + freePort(t, "127.0.0.1"), dir: t.TempDir()}
	if err := Adopt(g.nodes["s1"].dir, "s1", g.nodes["s1"].addr, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if err := Adopt(g.nodes["s1"].dir, "s1", g.nodes["s1"].addr, bytes.NewReader(buf.Bytes())); !errors.Is(err, ErrHasState) {
		t.Fatalf("second adopt: %v", err)
	}
	s1 := g.start("s1", "127.0.0.1")
	if !hasNodes(s1, "before-ha") {
		t.Fatal("the adopted state is not restored at start")
	}
	if err := s1.m.Bootstrap(s1.addr); !errors.Is(err, ErrHasState) {
		t.Fatalf("bootstrap of an adopted member: %v", err)
	}
	g.leader()
	c, _ = createNode("after-ha")
	if res := g.apply(c); res.Err != nil {
		t.Fatal(res.Err)
	}
	s2 := g.start("s2", "127.0.0.2")
	g.mustAdd(g.leader(), s2, false)
	waitFor(t, "s2 to hold the adopted state and the new write", func() bool { return hasNodes(s2, "before-ha", "after-ha") })
}
