package ping

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/momgate/momgate/proto"
)

// DenyList is a Revoker: the node ids and addresses the server has denied.
// Reads are lock-free (copy on write); writes are rare.
//
// A node id is denied for good (ids are never reused). An address may be
// denied only under the cluster keys that existed when it was denied
// (DenyUnder): those are the keys a deleted node can hold. Once a rotation
// has replaced them, the address is free for a node created on it later,
// whose PINGs carry the new key id, while the deleted node's PINGs fail on
// their key.
//
// A list can be held (Hold): it then refuses every PING (RevokedUnder is
// true for everyone) until Release, for a MOM that lost its persisted list
// and must admit no peer before the server's DenySet has arrived. The
// hold does not change what Revoked, AddrKeys, Nodes and Addrs report
// about the list itself.
type DenyList struct {
	mu   sync.Mutex // serialises writers
	set  atomic.Pointer[denySet]
	held atomic.Bool
	gen  atomic.Uint64 // changes, counted (Generation)
}

// Generation counts the changes made to the list (every Deny, DenyUnder
// and Allow, and each change of an Apply, whether or not it changed what
// is listed); it starts at 0.
// A reader that saw generation g and sees g again knows nothing was
// denied or lifted in between (the OpenPBS plugin's connection check,
// docs/PROTOCOL.md section 7). The hold is not counted.
func (d *DenyList) Generation() uint64 { return d.gen.Load() }

// Hold makes RevokedUnder refuse everyone until Release.
func (d *DenyList) Hold() { d.held.Store(true) }

// Release ends a Hold: call it once the server's whole list is applied.
func (d *DenyList) Release() { d.held.Store(false) }

// Held reports whether the list is held (see Hold).
func (d *DenyList) Held() bool { return d.held.Load() }

type denySet struct {
	nodes map[proto.NodeID]struct{}
	addrs map[proto.Addr][]uint32 // nil: under every key
}

// Revoked reports whether node, or addr under any key, has been denied.
func (d *DenyList) Revoked(node proto.NodeID, addr proto.Addr) bool {
	s := d.set.Load()
	if s == nil {
		return false
	}
	if _, ok := s.nodes[node]; ok {
		return true
	}
	_, ok := s.addrs[addr]
	return ok
}

// RevokedUnder reports whether a PING from node at addr sealed under key
// keyID is refused: the list is held, the node is denied, or the address
// is denied under that key (or under every key).
func (d *DenyList) RevokedUnder(node proto.NodeID, addr proto.Addr, keyID uint32) bool {
	return d.held.Load() || d.Listed(node, addr, keyID)
}

// Listed is RevokedUnder as the list itself says, held or not: for a PING
// whose sender the hold is not about (the server's replies on the control
// connection, which bring the list).
func (d *DenyList) Listed(node proto.NodeID, addr proto.Addr, keyID uint32) bool {
	s := d.set.Load()
	if s == nil {
		return false
	}
	if _, ok := s.nodes[node]; ok {
		return true
	}
	ids, ok := s.addrs[addr]
	if !ok {
		return false
	}
	if ids == nil {
		return true
	}
	for _, id := range ids {
		if id == keyID {
			return true
		}
	}
	return false
}

// Deny adds a node and an address, the address under every key; a zero
// node id or Addr is skipped.
func (d *DenyList) Deny(node proto.NodeID, addr proto.Addr) {
	d.DenyUnder(node, addr, nil)
}

// DenyUnder adds a node for good and an address under the given key ids
// only (nil: every key). A zero node id or Addr is skipped. Denying an
// address again adds to its keys.
func (d *DenyList) DenyUnder(node proto.NodeID, addr proto.Addr, keyIDs []uint32) {
	d.Apply([]DenyChange{{Node: node, Addr: addr, KeyIDs: keyIDs}})
}

// DenyChange is one change of Apply: a DenyUnder of Node, Addr and
// KeyIDs, or with Lift an Allow of Node and Addr.
type DenyChange struct {
	Node   proto.NodeID
	Addr   proto.Addr
	KeyIDs []uint32 // nil: the address under every key
	Lift   bool
}

// Apply makes the changes in order as one write: the list is copied once,
// however many there are (a list loaded at start, a DenySet), where one
// DenyUnder or Allow per entry would copy it once per entry. Each change
// counts in Generation.
func (d *DenyList) Apply(changes []DenyChange) {
	if len(changes) == 0 {
		return
	}
	d.update(uint64(len(changes)), func(s *denySet) {
		for _, c := range changes {
			if c.Lift {
				delete(s.nodes, c.Node)
				delete(s.addrs, c.Addr)
				continue
			}
			s.deny(c.Node, c.Addr, c.KeyIDs)
		}
	})
}

func (s *denySet) deny(node proto.NodeID, addr proto.Addr, keyIDs []uint32) {
	if node != (proto.NodeID{}) {
		s.nodes[node] = struct{}{}
	}
	if addr == (proto.Addr{}) {
		return
	}
	old, had := s.addrs[addr]
	switch {
	case keyIDs == nil || (had && old == nil):
		s.addrs[addr] = nil
	default:
		merged := append([]uint32{}, old...)
		for _, id := range keyIDs {
			if !slices.Contains(merged, id) {
				merged = append(merged, id)
			}
		}
		s.addrs[addr] = merged
	}
}

// AddrKeys returns the key ids an address is denied under: nil and true
// for every key, false if it is not denied.
func (d *DenyList) AddrKeys(addr proto.Addr) ([]uint32, bool) {
	s := d.set.Load()
	if s == nil {
		return nil, false
	}
	ids, ok := s.addrs[addr]
	return slices.Clone(ids), ok
}

// Allow removes a node and an address from the list (a node re-created on
// a denied address).
func (d *DenyList) Allow(node proto.NodeID, addr proto.Addr) {
	d.Apply([]DenyChange{{Node: node, Addr: addr, Lift: true}})
}

// Nodes returns the denied node ids.
func (d *DenyList) Nodes() []proto.NodeID {
	s := d.set.Load()
	if s == nil {
		return nil
	}
	out := make([]proto.NodeID, 0, len(s.nodes))
	for n := range s.nodes {
		out = append(out, n)
	}
	return out
}

// Addrs returns the denied addresses.
func (d *DenyList) Addrs() []proto.Addr {
	s := d.set.Load()
	if s == nil {
		return nil
	}
	out := make([]proto.Addr, 0, len(s.addrs))
	for a := range s.addrs {
		out = append(out, a)
	}
	return out
}

// update replaces the set with a copy changed by f, counting changes.
func (d *DenyList) update(changes uint64, f func(*denySet)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := &denySet{nodes: map[proto.NodeID]struct{}{}, addrs: map[proto.Addr][]uint32{}}
	if old := d.set.Load(); old != nil {
		for n := range old.nodes {
			next.nodes[n] = struct{}{}
		}
		for a, ids := range old.addrs {
			next.addrs[a] = ids // never mutated in place
		}
	}
	f(next)
	d.set.Store(next)
	d.gen.Add(changes)
}
