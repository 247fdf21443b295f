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

// The replay window of docs/PROTOCOL.md section 3.4: below a sender's
// high-water mark the guard admits, exactly once each, timestamps that are
// at most WindowTime below the mark, and remembers at most WindowCount of
// them. WindowTime is the handshake deadline: a PING overtaken by a later
// one of the same sender waits in the handshake, and a connection that
// waits longer is closed. WindowCount is the per-source pre-authentication
// limit (16 connections of one source in the handshake at once), the most
// PINGs of one sender that can be in flight together.
const (
	WindowTime  = 10 * time.Second
	WindowCount = 16
	windowNS    = uint64(WindowTime)
)

// MarkStore persists high-water marks. Put is called with the guard's shard
// lock held whenever a sender's mark rises, before the PING is admitted, so
// it must be quick (an append to a log, not an fsync). Stamps admitted
// inside the window below the mark are not passed to Put: the mark already
// covers them, since a guard restarted from its store admits nothing at or
// below a restored mark. A store must restore the maximum per sender
// whatever the order of the Puts.
type MarkStore interface {
	Put(node proto.NodeID, ts uint64) error
}

// NopMarks is a MarkStore that keeps nothing, for tests and benchmarks.
type NopMarks struct{}

// Put does nothing.
func (NopMarks) Put(proto.NodeID, uint64) error { return nil }

// Recovery describes a guard whose mark store lost marks
// (docs/PROTOCOL.md section 3.4): no restored mark is trusted to cover
// everything admitted before the loss, so a sender is vouched for again
// only by a PING that passes the first-contact rule.
type Recovery struct {
	// Active means marks were lost: a sender without a mark, or with an
	// unvouched one, is admitted only above Floor, and above Floor plus
	// the freshness window while the server does not attest it; with a
	// freshness window of 0 only with the server's attestation.
	Active bool
	// Floor is the receiver's wall clock at the recovery, in ns; 0 when
	// clocks are not trusted (freshness 0).
	Floor uint64
	// Unvouched are the senders whose initial marks were restored from
	// the damaged store; nil with Active means every initial mark.
	Unvouched map[proto.NodeID]struct{}
}

// GuardConfig configures a Guard.
type GuardConfig struct {
	// Freshness bounds |timestamp - now| on first contact; 0 disables the
	// check. Negative means DefaultFreshness.
	Freshness time.Duration
	// Capacity bounds the number of marks kept; <= 0 means DefaultCapacity.
	Capacity int
	// Store persists marks; nil means NopMarks.
	Store MarkStore
	// Recovery is set when the store lost marks.
	Recovery Recovery
}

// Attestation is the server's word on a sender the receiver holds no
// vouched mark for: it admitted a PING of that sender stamped Floor, so
// everything the sender sealed before is at or below Floor
// (docs/PROTOCOL.md section 3.4). OK false means the server could not
// attest (unknown sender, no control connection, no answer in time).
//
// Fresh marks a recovery attestation (a FloorAnswer of status fresh, or the
// receiver's own word on a peer that has just answered its fresh
// challenge): Floor is a stamp the sender made after the receiver asked,
// so above every stamp it sealed before the receiver's loss, whatever the
// clocks. A recovering guard counts only fresh attestations.
type Attestation struct {
	Floor uint64
	OK    bool
	Fresh bool
}

// Guard is the replay guard of docs/PROTOCOL.md section 3.4: per sender
// node id a high-water mark with a bounded window below it, a
// first-contact rule (the server's attested floor, or the freshness
// window), and bounded memory. It is safe for concurrent use, and its
// verify path does not allocate once a sender is known.
type Guard struct {
	freshness  uint64
	perShard   int
	store      MarkStore
	recovering bool
	recFloor   uint64
	shards     [guardShards]guardShard
}

type guardShard struct {
	mu    sync.Mutex
	tick  uint64
	marks map[proto.NodeID]mark
}

// mark is one sender's replay state: nothing at or below floor is
// admitted, nor top, nor a stamp in seen; everything else above floor is,
// once. Invariant: floor <= top and every non-zero seen is in (floor, top).
type mark struct {
	top       uint64              // high-water mark: the highest admitted stamp
	floor     uint64              // nothing at or below it is admitted
	seen      [WindowCount]uint64 // stamps admitted in (floor, top); 0 is a free slot
	used      uint64              // shard tick of the last admission, for eviction
	unvouched bool                // restored from a store that lost marks
}

// NewGuard returns a guard that starts from the persisted marks in initial
// (which it does not keep). A restored mark is its own floor: nothing the
// window admitted before the restart is vouched for.
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
	g := &Guard{freshness: uint64(cfg.Freshness), perShard: per, store: cfg.Store,
		recovering: cfg.Recovery.Active, recFloor: cfg.Recovery.Floor}
	if !g.recovering {
		g.recFloor = 0
	}
	for i := range g.shards {
		g.shards[i].marks = make(map[proto.NodeID]mark)
	}
	for n, ts := range initial {
		s := g.shard(n)
		s.tick++
		s.evictIfFull(per)
		m := mark{top: ts, floor: ts, used: s.tick}
		if g.recovering {
			_, listed := cfg.Recovery.Unvouched[n]
			m.unvouched = listed || cfg.Recovery.Unvouched == nil
		}
		s.marks[n] = m
	}
	return g
}

func (g *Guard) shard(n proto.NodeID) *guardShard {
	return &g.shards[n[15]%guardShards]
}

// Advance is AdvanceAttested without an attestation.
func (g *Guard) Advance(node proto.NodeID, ts uint64, now func() time.Time, revoked bool) error {
	return g.AdvanceAttested(node, ts, now, revoked, Attestation{})
}

// AdvanceAttested runs checks 8 to 10 (replay, stale, revoked) for a PING
// from node stamped ts and, if all pass, persists and records it, as one
// atomic step. revoked is the caller's revocation verdict, computed
// before; att is the server's attestation for a sender the guard holds no
// vouched mark for (NeedsAttestation), ignored otherwise; now is read
// only on first contact.
func (g *Guard) AdvanceAttested(node proto.NodeID, ts uint64, now func() time.Time, revoked bool, att Attestation) error {
	s := g.shard(node)
	s.mu.Lock()
	defer s.mu.Unlock()
	m, seen := s.marks[node]
	first := !seen || m.unvouched
	if first && g.recovering && att.OK && !att.Fresh {
		// Attested by the server's heartbeat stamps only: a PING sealed in
		// the last heartbeat intervals before the loss can lie above
		// them (docs/PROTOCOL.md 3.4), so a recovering guard ignores it.
		att = Attestation{}
	}
	if first && att.OK && att.Fresh && att.Floor > 0 {
		return g.vouchFresh(s, node, m, seen, ts, att.Floor, revoked)
	}
	var floor uint64
	if first {
		var err error
		if floor, err = g.firstContact(&m, seen, ts, now, att); err != nil {
			return err
		}
	} else if !m.admits(ts) {
		return ErrReplay
	}
	if revoked {
		return ErrRevoked
	}
	if first || ts > m.top {
		if err := g.store.Put(node, ts); err != nil {
			return fmt.Errorf("%w: %v", ErrPersist, err)
		}
	}
	s.tick++
	if !seen {
		s.evictIfFull(g.perShard)
	}
	if first {
		m = mark{top: ts, floor: floor}
		if ts > windowNS && ts-windowNS > m.floor {
			m.floor = ts - windowNS
		}
	} else {
		m.accept(ts)
	}
	m.used = s.tick
	s.marks[node] = m
	return nil
}

// vouchFresh applies a fresh attestation f (the sender stamped f after
// the receiver asked, so everything it sealed before is below f): the
// sender is vouched for again with a mark at f, persisted, whether or not
// its PING stamped ts (sealed before f, as a rule: it is what the receiver
// asked about) passes. Only a ts above f is admitted; the sender's next
// PING is then judged by its mark alone, with no more lookups. s is
// locked.
func (g *Guard) vouchFresh(s *guardShard, node proto.NodeID, m mark, seen bool, ts, f uint64, revoked bool) error {
	if seen && m.top > f {
		f = m.top // cannot happen with a monotonic stamper; fail closed
	}
	if err := g.store.Put(node, f); err != nil {
		return fmt.Errorf("%w: %v", ErrPersist, err)
	}
	s.tick++
	if !seen {
		s.evictIfFull(g.perShard)
	}
	m = mark{top: f, floor: f, used: s.tick}
	defer func() { s.marks[node] = m }()
	switch {
	case ts <= f:
		return ErrFloor
	case revoked:
		return ErrRevoked
	}
	if err := g.store.Put(node, ts); err != nil {
		return fmt.Errorf("%w: %v", ErrPersist, err)
	}
	m.accept(ts)
	return nil
}

// firstContact applies the first-contact rule to a sender with no mark or
// an unvouched one (m, if seen) and returns the floor of its new mark: the
// highest of the unvouched mark, the recovery floor and the attested
// floor, all of which ts must exceed. Without an attestation the
// freshness window applies; with none either, a recovering guard refuses.
func (g *Guard) firstContact(m *mark, seen bool, ts uint64, now func() time.Time, att Attestation) (uint64, error) {
	if seen && ts <= m.top {
		return 0, ErrReplay
	}
	bound := g.recFloor
	if seen && m.top > bound {
		bound = m.top
	}
	if att.OK && att.Floor > bound {
		bound = att.Floor
	}
	if !att.OK && g.recovering && g.recFloor > 0 {
		// Unattested, the receiver has only its own clock: anything it
		// admitted before the loss was stamped at most the freshness
		// window ahead of its clock then, so at most recFloor +
		// freshness, whatever the sender's clock (docs/PROTOCOL.md 3.4).
		if f := g.recFloor + g.freshness; f > bound {
			bound = f
		}
	}
	if ts <= bound {
		return 0, ErrFloor
	}
	if att.OK {
		return bound, nil
	}
	if g.freshness > 0 {
		n := uint64(0)
		if u := now().UnixNano(); u > 0 {
			n = uint64(u)
		}
		d := ts - n
		if n > ts {
			d = n - ts
		}
		if d > g.freshness {
			return 0, ErrStale
		}
		return bound, nil
	}
	if g.recovering {
		return 0, ErrUnattested
	}
	return bound, nil
}

// admits reports whether a known, vouched sender's stamp ts is new: above
// the floor and neither the mark nor a stamp the window already admitted.
func (m *mark) admits(ts uint64) bool {
	if ts <= m.floor || ts == m.top {
		return false
	}
	if ts > m.top {
		return true
	}
	for _, v := range m.seen {
		if v == ts {
			return false
		}
	}
	return true
}

// accept records an admitted stamp ts (admits(ts) held): a new mark
// raises the floor to mark - WindowTime and keeps the old mark in the
// window; a stamp below the mark takes a window slot.
func (m *mark) accept(ts uint64) {
	if ts <= m.top {
		m.remember(ts)
		return
	}
	old := m.top
	m.top = ts
	if ts > windowNS && ts-windowNS > m.floor {
		m.floor = ts - windowNS
	}
	for i, v := range m.seen {
		if v != 0 && v <= m.floor {
			m.seen[i] = 0
		}
	}
	if old > m.floor {
		m.remember(old)
	}
}

// remember puts v, which is in (floor, top), in a free slot; when every
// slot is taken the smallest of the slots and v becomes the floor and is
// forgotten (it stays refused: it is at the floor now).
func (m *mark) remember(v uint64) {
	least, at := v, -1
	for i, w := range m.seen {
		if w == 0 {
			m.seen[i] = v
			return
		}
		if w < least {
			least, at = w, i
		}
	}
	m.floor = least
	if at >= 0 {
		m.seen[at] = v
	}
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

// NeedsAttestation reports whether a PING from node would be judged by the
// first-contact rule (no mark, or an unvouched one), so that the caller
// can fetch the server's attestation before AdvanceAttested.
func (g *Guard) NeedsAttestation(node proto.NodeID) bool {
	s := g.shard(node)
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.marks[node]
	return !ok || m.unvouched
}

// Recovering reports whether the guard was started from a store that lost
// marks.
func (g *Guard) Recovering() bool { return g.recovering }

// Mark returns the high-water mark of node and whether there is one.
func (g *Guard) Mark(node proto.NodeID) (uint64, bool) {
	s := g.shard(node)
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.marks[node]
	return m.top, ok
}

// Window returns node's floor and the stamps its window holds below the
// mark (in no order), for diagnostics and tests.
func (g *Guard) Window(node proto.NodeID) (floor uint64, below []uint64) {
	s := g.shard(node)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.marks[node]
	for _, v := range m.seen {
		if v != 0 {
			below = append(below, v)
		}
	}
	return m.floor, below
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
			out[n] = m.top
		}
		s.mu.Unlock()
	}
	return out
}
