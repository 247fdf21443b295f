package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// TestDeletedNodeRemembered: a deleted node's Hello is refused as revoked
// by name, also after a restart and after its deny entry is gone, so its
// MOM stops; the record keeps the newest maxDeleted.
func TestDeletedNodeRemembered(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	s := newTestServer(t, dir, clock)
	res, err := s.createNode(context.Background(), admin.CreateNodeArgs{Name: "cn03", Mom: "127.0.0.53"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := uuid.Parse(res.Node.ID)
	if _, err := s.deleteNode("cn03"); err != nil {
		t.Fatal(err)
	}
	hello := func(s *Server) (string, error) {
		_, _, name, err := s.helloNode(proto.NodeID(id), netip.MustParseAddr("127.0.0.53"))
		return name, err
	}
	check := func(what string, s *Server) {
		t.Helper()
		name, err := hello(s)
		var rj *handshake.Rejection
		if !errors.As(err, &rj) || rj.Reason != reasons.Revoked || name != "cn03" ||
			!strings.Contains(err.Error(), "node cn03 (id "+res.Node.ID+") was deleted and is revoked (delete node at 2026-12-01T10:00:00Z)") {
			t.Fatalf("%s: hello of the deleted node: name %q, %v", what, name, err)
		}
	}
	check("at once", s)
	live, err := s.createNode(context.Background(), admin.CreateNodeArgs{Name: "cn01", Mom: "127.0.0.51"})
	if err != nil {
		t.Fatal(err)
	}
	liveID, _ := uuid.Parse(live.Node.ID)
	for _, tc := range []struct {
		id     proto.NodeID
		status uint8
		name   string
	}{
		{proto.NodeID(liveID), proto.NameFound, "cn01"},
		{proto.NodeID(id), proto.NameDeleted, "cn03"},
		{proto.NodeID(uuid.New()), proto.NameUnknown, ""},
	} {
		r := s.nodeName(&proto.NameLookup{ID: 7, Node: tc.id})
		if r.ID != 7 || r.Node != tc.id || r.Status != tc.status || r.Name != tc.name {
			t.Errorf("NameLookup of %s: %+v", tc.name, r)
		}
		if _, err := proto.Unmarshal(proto.Marshal(r)); err != nil {
			t.Errorf("answer does not decode: %v", err)
		}
	}

	// Its deny entry pruned (the keys it guarded against retired): still
	// refused as revoked, by name.
	s.mu.Lock()
	s.deny.Allow(proto.NodeID(id), proto.Addr{})
	s.mu.Unlock()
	check("without its deny entry", s)

	s.base.Close()
	s.states.close()
	s2 := newTestServer(t, dir, clock)
	defer s2.states.close()
	check("after a restart", s2)

	// Bounded: past maxDeleted the oldest are forgotten.
	d := newDeletedNodes()
	first := proto.NodeID(uuid.New())
	d.add(first, "n0", clock.Now())
	for i := 1; i <= maxDeleted; i++ {
		d.add(proto.NodeID(uuid.New()), fmt.Sprintf("n%d", i), clock.Now().Add(time.Duration(i)*time.Second))
	}
	if _, kept := d.lookup(first); kept || len(d.byID) != maxDeleted || len(d.order) != maxDeleted {
		t.Fatalf("after %d deletions: %d remembered, oldest kept %v", maxDeleted+1, len(d.byID), kept)
	}
	recs, err := decodeDeleted(d.records())
	if err != nil {
		t.Fatal(err)
	}
	var back deletedNodes
	back.load(recs)
	if len(back.byID) != maxDeleted || back.order[0] != d.order[0] {
		t.Fatalf("records round trip: %d, oldest %v", len(back.byID), back.order[0])
	}
	for _, bad := range []deletedJSON{{Node: "nope", Name: "x"}, {Node: uuid.NewString(), Name: ""}, {Node: uuid.NewString(), Name: "-x"}} {
		if _, err := decodeDeleted([]deletedJSON{bad}); !errors.Is(err, errBadDenyList) {
			t.Fatalf("bad record %+v: %v", bad, err)
		}
	}
}
