package server

import (
	"testing"

	"github.com/momgate/momgate/proto"
)

// TestProbeable: a recovery lookup is probed only between two sealed
// sessions that proved the capability, for a sender not denied; anything
// else (an old server's or MOM's session, a legacy one, no session) is
// answered unknown.
func TestProbeable(t *testing.T) {
	capable := func() *session { return &session{floorProbe: true} }
	old := &session{}
	legacy := &session{v1: true, floorProbe: true}
	cases := []struct {
		name          string
		asker, target *session
		revoked       bool
		want          bool
	}{
		{"both capable", capable(), capable(), false, true},
		{"sender denied", capable(), capable(), true, false},
		{"no sender session", capable(), nil, false, false},
		{"sender without the capability", capable(), old, false, false},
		{"asker without the capability", old, capable(), false, false},
		{"legacy sender", capable(), legacy, false, false},
	}
	for _, tc := range cases {
		if got := probeable(tc.asker, tc.target, tc.revoked); got != tc.want {
			t.Errorf("%s: probeable %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestProbeTable: a probe is settled once, only by a FloorStamp on the
// session it went out on; a stamp answers fresh, none unknown; the table
// is bounded.
func TestProbeTable(t *testing.T) {
	var tb probeTable
	target, other, asker := &session{}, &session{}, &session{}
	node := proto.NodeID{7}
	never := func(uint32) {}
	id, ok := tb.open(&probe{target: target, asker: asker, lookup: 42, node: node}, never)
	if !ok || id == 0 {
		t.Fatalf("open: id %d ok %v", id, ok)
	}
	if tb.take(id, other) != nil {
		t.Fatal("a FloorStamp on another session settled the probe")
	}
	if tb.take(id+1, target) != nil {
		t.Fatal("a FloorStamp with an id never sent settled a probe")
	}
	p := tb.take(id, target)
	if p == nil {
		t.Fatal("the sender's FloorStamp did not settle its probe")
	}
	p.timer.Stop()
	if tb.take(id, target) != nil {
		t.Fatal("a probe settled twice")
	}
	if a := p.answer(1764000000000000001); a.Status != proto.FloorFresh || a.Floor != 1764000000000000001 || a.ID != 42 || a.Node != node {
		t.Fatalf("answer with a stamp: %+v", a)
	}
	if a := p.answer(0); a.Status != proto.FloorUnknown || a.Floor != 0 {
		t.Fatalf("answer without a stamp: %+v", a)
	}
	for i := 0; i < maxProbesPerAsker; i++ {
		if _, ok := tb.open(&probe{target: target, asker: asker}, never); !ok {
			t.Fatalf("probe %d of one asker refused below its bound", i)
		}
	}
	if _, ok := tb.open(&probe{target: target, asker: asker}, never); ok {
		t.Fatal("a probe past one asker's bound was opened")
	}
	for i := maxProbesPerAsker; i < maxProbes; i++ {
		if _, ok := tb.open(&probe{target: target, asker: &session{}}, never); !ok {
			t.Fatalf("probe %d refused below the bound", i)
		}
	}
	if _, ok := tb.open(&probe{target: target, asker: &session{}}, never); ok {
		t.Fatal("a probe past the bound was opened")
	}
	for id, p := range tb.pending {
		p.timer.Stop()
		tb.take(id, nil)
	}
	if len(tb.asking) != 0 {
		t.Fatalf("per-asker counts left: %d", len(tb.asking))
	}
}
