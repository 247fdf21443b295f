package mom

import (
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// peerTable records every sister admitted by PING, keyed by address. A
// row keeps the node id and key id in binary; they are formatted only when
// the table is listed, not on every admission.
type peerTable struct {
	mu    sync.Mutex
	peers map[proto.Addr]*peer
	max   int
}

// peer is one row of the table.
type peer struct {
	name        string       // node name, "" if the server could not be asked (or v1)
	node        proto.NodeID // zero for v1
	key         keys.KeyID   // zero for v1
	stamp       uint64       // timestamp of the PING last admitted (admin.AdmittedPeer.Stamp)
	dir         string       // "in" or "out"
	v1          bool
	first, last time.Time
	count       uint64
}

func newPeerTable(max int) *peerTable {
	return &peerTable{peers: map[proto.Addr]*peer{}, max: max}
}

func (t *peerTable) row(addr proto.Addr, now time.Time) *peer {
	p := t.peers[addr]
	if p == nil {
		if len(t.peers) >= t.max {
			t.evictOldest()
		}
		p = &peer{first: now}
		t.peers[addr] = p
	}
	return p
}

func (t *peerTable) admit(addr proto.Addr, node proto.NodeID, name string, key keys.KeyID, dir string, stamp uint64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.row(addr, now)
	if name != "" || p.name == "" {
		p.name = name // an earlier name stays if the server could not be asked now
	}
	p.node, p.key, p.dir, p.last, p.v1, p.stamp = node, key, dir, now, false, stamp
	p.count++
}

// admitLegacy records a sister admitted by the address list (v1): no node
// id, no key.
func (t *peerTable) admitLegacy(addr proto.Addr, dir string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.row(addr, now)
	p.name, p.node, p.key, p.dir, p.last, p.v1, p.stamp = "", proto.NodeID{}, 0, dir, now, true, 0
	p.count++
}

// evictOldest makes room in a full table: it drops the least recently
// admitted sixteenth of the rows at once, so that a table kept full by new
// sisters costs O(log n) per admission, not a scan of every row each.
func (t *peerTable) evictOldest() {
	type row struct {
		addr proto.Addr
		last time.Time
	}
	rows := make([]row, 0, len(t.peers))
	for a, p := range t.peers {
		rows = append(rows, row{a, p.last})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].last.Before(rows[j].last) })
	for _, r := range rows[:max(1, len(rows)/16)] {
		delete(t.peers, r.addr)
	}
}

// forget drops a revoked node's rows.
func (t *peerTable) forget(node proto.NodeID, addr proto.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.peers, addr)
	if node == (proto.NodeID{}) {
		return
	}
	for a, p := range t.peers {
		if p.node == node {
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
		out[p.protocol()]++
	}
	return out
}

func (p *peer) protocol() string {
	if p.v1 {
		return "v1"
	}
	return "v2"
}

func (t *peerTable) list() []admin.AdmittedPeer {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]admin.AdmittedPeer, 0, len(t.peers))
	for a, p := range t.peers {
		row := admin.AdmittedPeer{Addr: a.String(), Name: p.name, Direction: p.dir, Protocol: p.protocol(), First: p.first, Last: p.last,
			Count: p.count, Stamp: p.stamp}
		if !p.v1 {
			row.NodeID = uuid.UUID(p.node).String()
		}
		if p.key != 0 {
			row.KeyID = p.key.String()
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}
