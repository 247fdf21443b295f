package ping

import (
	"sync"
	"sync/atomic"

	"github.com/momgate/momgate/proto"
)

// DenyList is a Revoker: the node ids and addresses the server has denied.
// Reads are lock-free (copy on write); writes are rare.
type DenyList struct {
	mu  sync.Mutex // serialises writers
	set atomic.Pointer[denySet]
}

type denySet struct {
	nodes map[proto.NodeID]struct{}
	addrs map[proto.Addr]struct{}
}

// Revoked reports whether node or addr has been denied.
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

// Deny adds a node and an address; a zero node id or Addr is skipped.
func (d *DenyList) Deny(node proto.NodeID, addr proto.Addr) {
	d.update(func(s *denySet) {
		if node != (proto.NodeID{}) {
			s.nodes[node] = struct{}{}
		}
		if addr != (proto.Addr{}) {
			s.addrs[addr] = struct{}{}
		}
	})
}

// Allow removes a node and an address from the list (a node re-created on
// a denied address).
func (d *DenyList) Allow(node proto.NodeID, addr proto.Addr) {
	d.update(func(s *denySet) {
		delete(s.nodes, node)
		delete(s.addrs, addr)
	})
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

func (d *DenyList) update(f func(*denySet)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := &denySet{nodes: map[proto.NodeID]struct{}{}, addrs: map[proto.Addr]struct{}{}}
	if old := d.set.Load(); old != nil {
		for n := range old.nodes {
			next.nodes[n] = struct{}{}
		}
		for a := range old.addrs {
			next.addrs[a] = struct{}{}
		}
	}
	f(next)
	d.set.Store(next)
}
