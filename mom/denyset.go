package mom

import (
	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/proto"
)

// applyDenySet replaces the deny list with the server's whole list (sent
// after every Welcome): denies this MOM missed while offline take effect,
// and an address the server has given to a node again is admitted again.
func (m *Mom) applyDenySet(entries []proto.NodeAddr) error {
	wantNode := map[proto.NodeID]bool{}
	wantAddr := map[proto.Addr]bool{}
	var added []proto.NodeAddr
	for _, e := range entries {
		if e.Node != (proto.NodeID{}) {
			wantNode[e.Node] = true
			if !m.deny.Revoked(e.Node, proto.Addr{}) {
				added = append(added, proto.NodeAddr{Node: e.Node})
			}
		}
		if e.Addr != (proto.Addr{}) {
			wantAddr[e.Addr] = true
			if !m.deny.Revoked(proto.NodeID{}, e.Addr) {
				added = append(added, proto.NodeAddr{Addr: e.Addr})
			}
		}
	}
	changed := len(added) > 0
	for _, n := range m.deny.Nodes() {
		if !wantNode[n] {
			m.deny.Allow(n, proto.Addr{})
			changed = true
			m.log.WithField("node_id", uuid.UUID(n).String()).Info("deny lifted by server")
		}
	}
	for _, a := range m.deny.Addrs() {
		if !wantAddr[a] {
			m.deny.Allow(proto.NodeID{}, a)
			changed = true
			m.log.WithField("addr", a.String()).Info("deny lifted by server (address given to a node again)")
		}
	}
	if !changed {
		return nil
	}
	for _, e := range added {
		m.deny.Deny(e.Node, e.Addr)
		if e.Node != (proto.NodeID{}) {
			m.verifier.Guard.Forget(e.Node)
		}
		m.peers.forget(e.Node, e.Addr)
		f := logrus.Fields{}
		if e.Node != (proto.NodeID{}) {
			f["node_id"] = uuid.UUID(e.Node).String()
		}
		if e.Addr != (proto.Addr{}) {
			f["addr"] = e.Addr.String()
		}
		m.log.WithFields(f).Warn("denied by server (missed while disconnected)")
	}
	return m.saveDeny()
}

// applyDenyLift lifts the denies the server names: it has given these
// addresses to a node again. An entry's node id and address are each
// lifted; an entry not on the list changes nothing. The list is persisted
// only if it changed.
func (m *Mom) applyDenyLift(entries []proto.NodeAddr) error {
	changed := false
	for _, e := range entries {
		if e.Node != (proto.NodeID{}) && m.deny.Revoked(e.Node, proto.Addr{}) {
			m.deny.Allow(e.Node, proto.Addr{})
			changed = true
			m.log.WithField("node_id", uuid.UUID(e.Node).String()).Info("deny lifted by server")
		}
		if e.Addr != (proto.Addr{}) {
			if _, denied := m.deny.AddrKeys(e.Addr); denied {
				m.deny.Allow(proto.NodeID{}, e.Addr)
				changed = true
				m.log.WithField("addr", e.Addr.String()).Info("deny lifted by server (DenyLift): address given to a node again")
			}
		}
	}
	if !changed {
		return nil
	}
	return m.saveDeny()
}
