package ping

import (
	"fmt"
	"sync"
	"time"

	"github.com/momgate/momgate/proto"
)

// Guard defaults.
const (
	DefaultFreshness = 5 * time.Minute
	DefaultCapacity  = 1 << 20
	guardShards      = 16
	evictSample      = 8
)

// MarkStore persists high-water marks. Put is called with the guard's shard
// lock held, once per admitted PING, so it must be quick (an append to a
// log, not an fsync); marks for one sender arrive in increasing order.
type MarkStore interface {
	Put(node proto.NodeID, ts uint64) error
}

// NopMarks is a MarkStore that keeps nothing, for tests and benchmarks.
type NopMarks struct{}

// Put does nothing.
func (NopMarks) Put(proto.NodeID, uint64) error { return nil }

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Freshness bounds |timestamp - now| on first contact; 0 disables the
	// check. Negative means DefaultFreshness.
	Freshness time.Duration
	// Capacity bounds the number of marks kept; <= 0 means DefaultCapacity.
	Capacity int
	// Store persists marks; nil means NopMarks.
	Store MarkStore
}

// Guard is the replay guard of docs/PROTOCOL.md section 3.4: one strictly
// increasing high-water mark per sender node id, a freshness window for
// first contact, bounded memory. It is safe for concurrent use.
type Guard struct {
	freshness uint64
	perShard  int
	store     MarkStore
	shards    [guardShards]guardShard
}

type guardShard struct {
	mu    sync.Mutex
	tick  uint64
	marks map[proto.NodeID]mark
}

type mark struct {
	ts   uint64 // high-water mark
	used uint64 // shard tick of the last advance, for eviction
}

// NewGuard returns a guard that starts from the persisted marks in initial
// (which it does not keep).
func NewGuard(cfg GuardConfig, initial map[proto.NodeID]uint64) *Guard {
	if cfg.Freshness < 0 {
		cfg.Freshness = DefaultFreshness
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.Store == nil {
		cfg.Store = NopMarks{}
	}
	per := (cfg.Capacity + guardShards - 1) / guardShards
	g := &Guard{freshness: uint64(cfg.Freshness), perShard: per, store: cfg.Store}
	for i := range g.shards {
		g.shards[i].marks = make(map[proto.NodeID]mark)
	}
	for n, ts := range initial {
		s := g.shard(n)
		s.tick++
		s.evictIfFull(per)
		s.marks[n] = mark{ts: ts, used: s.tick}
	}
	return g
}

func (g *Guard) shard(n proto.NodeID) *guardShard {
	return &g.shards[n[15]%guardShards]
}

// Advance runs checks 8 to 10 (replay, stale, revoked) for a PING from node
// stamped ts and, if all pass, persists and raises the node's mark, as one
// atomic step. revoked is the caller's revocation verdict, computed before;
// now is read only on first contact.
func (g *Guard) Advance(node proto.NodeID, ts uint64, now func() time.Time, revoked bool) error {
	s := g.shard(node)
	s.mu.Lock()
	defer s.mu.Unlock()
	m, seen := s.marks[node]
	if seen && ts <= m.ts {
		return ErrReplay
	}
	if !seen && g.freshness > 0 {
		n := uint64(0)
		if u := now().UnixNano(); u > 0 {
			n = uint64(u)
		}
		d := ts - n
		if n > ts {
			d = n - ts
		}
		if d > g.freshness {
			return ErrStale
		}
	}
	if revoked {
		return ErrRevoked
	}
	if err := g.store.Put(node, ts); err != nil {
		return fmt.Errorf("%w: %v", ErrPersist, err)
	}
	s.tick++
	if !seen {
		s.evictIfFull(g.perShard)
	}
	s.marks[node] = mark{ts: ts, used: s.tick}
	return nil
}

// evictIfFull makes room for one more mark by evicting the least recently
// advanced of a random sample (approximate LRU, O(1)).
func (s *guardShard) evictIfFull(limit int) {
	if len(s.marks) < limit {
		return
	}
	var victim proto.NodeID
	oldest, i := ^uint64(0), 0
	for n, m := range s.marks {
		if m.used < oldest {
			victim, oldest = n, m.used
		}
		if i++; i == evictSample {
			break
		}
	}
	delete(s.marks, victim)
}

// Mark returns the high-water mark of node and whether there is one.
func (g *Guard) Mark(node proto.NodeID) (uint64, bool) {
	s := g.shard(node)
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.marks[node]
	return m.ts, ok
}

// Forget drops node's mark, for a node deleted from the cluster.
func (g *Guard) Forget(node proto.NodeID) {
	s := g.shard(node)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.marks, node)
}

// Len returns the number of marks held.
func (g *Guard) Len() int {
	n := 0
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		n += len(s.marks)
		s.mu.Unlock()
	}
	return n
}

// Snapshot copies every mark, for compacting the store.
func (g *Guard) Snapshot() map[proto.NodeID]uint64 {
	out := make(map[proto.NodeID]uint64)
	for i := range g.shards {
		s := &g.shards[i]
		s.mu.Lock()
		for n, m := range s.marks {
			out[n] = m.ts
		}
		s.mu.Unlock()
	}
	return out
}
