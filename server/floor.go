package server

import (
	"time"

	"github.com/momgate/momgate/proto"
)

// The server's attestation of a node (docs/PROTOCOL.md section 4.9): a MOM
// about to judge a PING by the first-contact rule asks (FloorLookup) and
// the server answers from the node's control session, which authenticated
// the node by its identity key. One answer per lookup; nothing is pushed.

// floorAnswer answers a FloorLookup: attested, with the older of the
// stamps of the last two PINGs the server admitted on the node's control
// session, when that session is a PING session, up, its node not denied,
// and its last PING came within three heartbeat intervals; otherwise
// unknown.
func (s *Server) floorAnswer(m *proto.FloorLookup) *proto.FloorAnswer {
	out := &proto.FloorAnswer{ID: m.ID, Node: m.Node, Status: proto.FloorUnknown}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conns[m.Node]
	if !keyed(c) || c.stamped < 2 || s.deny.Revoked(m.Node, proto.AddrFrom(c.node.addr)) {
		return out
	}
	if s.cfg.Now().Sub(c.lastPing) > 3*time.Duration(s.reg.attrs.Heartbeat) {
		return out
	}
	out.Status, out.Floor = proto.FloorAttested, c.stamps[0]
	return out
}
