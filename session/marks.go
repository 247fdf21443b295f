package session

import (
	"fmt"
	"sync"

	"github.com/momgate/momgate/proto"
)

// Marks is the no-downgrade ratchet of section 6.7: the peers known to
// speak sealed sessions, by node id and by address. Once a peer is marked,
// an unsealed swap with it is refused (ErrDowngrade) and an initiator never
// falls back to a plain Ping towards its address. The daemon persists
// Snapshot and restores it with NewMarks; marks are removed only by an
// administrator (rollback) or when the node is deleted. Safe for concurrent
// use.
type Marks struct {
	mu    sync.Mutex
	nodes map[proto.NodeID]struct{}
	addrs map[proto.Addr]struct{}
}

// NewMarks returns marks holding entries (as Snapshot returned them).
func NewMarks(entries []proto.NodeAddr) *Marks {
	m := &Marks{nodes: map[proto.NodeID]struct{}{}, addrs: map[proto.Addr]struct{}{}}
	for _, e := range entries {
		m.Mark(e.Node, e.Addr)
	}
	return m
}

// Mark records that node, at addr, completed a sealed swap (or that the
// server says it speaks sealed sessions). It returns true if that is new,
// so the caller persists it. A zero node id or address marks the other
// alone.
func (m *Marks) Mark(node proto.NodeID, addr proto.Addr) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	if _, ok := m.nodes[node]; !ok && node != (proto.NodeID{}) {
		m.nodes[node] = struct{}{}
		changed = true
	}
	if _, ok := m.addrs[addr]; !ok && addr != (proto.Addr{}) {
		m.addrs[addr] = struct{}{}
		changed = true
	}
	return changed
}

// Forget removes node and addr: an administrator's rollback of a node to a
// version without sealed sessions, a deleted node, an address given to
// another node.
func (m *Marks) Forget(node proto.NodeID, addr proto.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.nodes, node)
	delete(m.addrs, addr)
}

// CheckPlain is the responder's check of a plain (unsealed) Ping from node
// at addr that passed the PING checks: ErrDowngrade if either is marked.
func (m *Marks) CheckPlain(node proto.NodeID, addr proto.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.nodes[node]; ok {
		n := node // escapes only here: the check allocates nothing
		return fmt.Errorf("node %x sent a plain Ping: %w", n[:4], ErrDowngrade)
	}
	if _, ok := m.addrs[addr]; ok {
		return fmt.Errorf("plain Ping from %s: %w", addr, ErrDowngrade)
	}
	return nil
}

// MayFallback reports whether an initiator whose SessionPing to addr was
// refused as unknown (a Reject, or a close before any reply) may retry
// with a plain Ping: only if addr is not marked. The refusal is not
// authenticated, so from a marked peer it is treated as an attack
// (ErrDowngrade).
func (m *Marks) MayFallback(addr proto.Addr) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, marked := m.addrs[addr]
	return !marked
}

// Snapshot returns every mark, for persisting: node ids with a zero
// address, then addresses with a zero node id.
func (m *Marks) Snapshot() []proto.NodeAddr {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]proto.NodeAddr, 0, len(m.nodes)+len(m.addrs))
	for n := range m.nodes {
		out = append(out, proto.NodeAddr{Node: n})
	}
	for a := range m.addrs {
		out = append(out, proto.NodeAddr{Addr: a})
	}
	return out
}
