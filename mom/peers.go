package mom

import (
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/proto"
)

// peerTable records every sister admitted by PING, keyed by address.
type peerTable struct {
	mu    sync.Mutex
	peers map[proto.Addr]*admin.AdmittedPeer
	max   int
}

func newPeerTable(max int) *peerTable {
	return &peerTable{peers: map[proto.Addr]*admin.AdmittedPeer{}, max: max}
}

func (t *peerTable) admit(addr proto.Addr, node proto.NodeID, name, keyID string, dir string, stamp uint64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[addr]
	if p == nil {
		if len(t.peers) >= t.max {
			t.evictOldest()
		}
		p = &admin.AdmittedPeer{Addr: addr.String(), First: now}
		t.peers[addr] = p
	}
	p.NodeID = uuid.UUID(node).String()
	if name != "" || p.Name == "" {
		p.Name = name // an earlier name stays if the server could not be asked now
	}
	p.KeyID, p.Direction, p.Last, p.Protocol, p.Stamp = keyID, dir, now, "v2", stamp
	p.Count++
}

// admitLegacy records a sister admitted by the address list (v1): no node
// id, no key.
func (t *peerTable) admitLegacy(addr proto.Addr, dir string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[addr]
	if p == nil {
		if len(t.peers) >= t.max {
			t.evictOldest()
		}
		p = &admin.AdmittedPeer{Addr: addr.String(), First: now}
		t.peers[addr] = p
	}
	p.Name, p.NodeID, p.KeyID, p.Direction, p.Last, p.Protocol, p.Stamp = "", "", "", dir, now, "v1", 0
	p.Count++
}

func (t *peerTable) evictOldest() {
	var victim proto.Addr
	var oldest time.Time
	first := true
	for a, p := range t.peers {
		if first || p.Last.Before(oldest) {
			victim, oldest, first = a, p.Last, false
		}
	}
	delete(t.peers, victim)
}

// forget drops a revoked node's rows.
func (t *peerTable) forget(node proto.NodeID, addr proto.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.peers, addr)
	id := uuid.UUID(node).String()
	for a, p := range t.peers {
		if p.NodeID == id {
			delete(t.peers, a)
		}
	}
}

// byProtocol counts the admitted sisters by the protocol they were
// admitted with, for the peers_by_protocol metric.
func (t *peerTable) byProtocol() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{"v1": 0, "v2": 0}
	for _, p := range t.peers {
		out[p.Protocol]++
	}
	return out
}

func (t *peerTable) list() []admin.AdmittedPeer {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]admin.AdmittedPeer, 0, len(t.peers))
	for _, p := range t.peers {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}
