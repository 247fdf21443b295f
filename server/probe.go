package server

import (
	"sync"
	"time"

	"github.com/momgate/momgate/proto"
)

// The recovery attestation (docs/PROTOCOL.md section 4.9): a MOM that lost
// its replay marks asks (RecoveryLookup) for a stamp its sender provably
// made after the lookup reached the server. The server sends the sender a
// FloorProbe on the sender's sealed control session and answers the lookup
// with the stamp of the FloorStamp that comes back on that same session
// with that probe id (status fresh), or unknown after recoveryWait. The
// binding of the reply to the probe is the sealed session's: no one else
// can put a FloorStamp on it. Nothing is answered from a clock.

// recoveryWait bounds how long a recovery lookup waits for the sender's
// FloorStamp before the server answers unknown.
const recoveryWait = 2 * time.Second

// maxProbes bounds the probes pending at once, and maxProbesPerAsker
// those of one asking session (so that one MOM cannot take every slot);
// past either a lookup is answered unknown at once (fail closed).
const (
	maxProbes         = 1024
	maxProbesPerAsker = 64
)

// probeTable holds the pending probes, by probe id.
type probeTable struct {
	mu      sync.Mutex
	next    uint32
	pending map[uint32]*probe
	asking  map[*session]int // pending probes per asking session
}

// probe is one recovery lookup waiting for its sender.
type probe struct {
	target *session // the sender's session the probe went out on
	asker  *session // the session the lookup came on
	lookup uint32   // the lookup's id
	node   proto.NodeID
	timer  *time.Timer
}

// probeable reports whether a recovery lookup from asker about a sender
// whose current session is target (nil if none) may be probed: both
// sessions sealed with the capability proven at Hello, the sender's node
// not denied. Otherwise the answer is unknown: an unsealed session cannot
// bind a FloorStamp to its probe, and a server or MOM that predates the
// capability never sends or answers a probe.
func probeable(asker, target *session, revoked bool) bool {
	return keyed(asker) && asker.floorProbe && keyed(target) && target.floorProbe && !revoked
}

// open registers a probe, starts its timer (expire runs with its id after
// recoveryWait) and returns its id; ok is false when the table is full.
// The id is never 0 and unique among the pending ones.
func (t *probeTable) open(p *probe, expire func(id uint32)) (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending == nil {
		t.pending, t.asking = map[uint32]*probe{}, map[*session]int{}
	}
	if len(t.pending) >= maxProbes || t.asking[p.asker] >= maxProbesPerAsker {
		return 0, false
	}
	for {
		t.next++
		if _, taken := t.pending[t.next]; t.next != 0 && !taken {
			break
		}
	}
	id := t.next
	p.timer = time.AfterFunc(recoveryWait, func() { expire(id) })
	t.pending[id] = p
	t.asking[p.asker]++
	return id, true
}

// take removes and returns the probe id when it is pending and, with from
// set, went out on from (a FloorStamp on any other session, or with an id
// it never got, settles nothing); nil otherwise.
func (t *probeTable) take(id uint32, from *session) *probe {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pending[id]
	if p == nil || (from != nil && p.target != from) {
		return nil
	}
	delete(t.pending, id)
	if t.asking[p.asker]--; t.asking[p.asker] <= 0 {
		delete(t.asking, p.asker)
	}
	return p
}

// answer is the FloorAnswer a settled probe gives: fresh with the stamp,
// or unknown when there is none (expired, or a stamp of 0).
func (p *probe) answer(stamp uint64) *proto.FloorAnswer {
	a := &proto.FloorAnswer{ID: p.lookup, Node: p.node, Status: proto.FloorUnknown}
	if stamp != 0 {
		a.Status, a.Floor = proto.FloorFresh, stamp
	}
	return a
}

// recoveryLookup handles a RecoveryLookup from mc: it probes the sender or
// answers unknown at once.
func (s *Server) recoveryLookup(mc *session, m *proto.RecoveryLookup) {
	unknown := &proto.FloorAnswer{ID: m.ID, Node: m.Node, Status: proto.FloorUnknown}
	s.mu.Lock()
	target := s.conns[m.Node]
	ok := probeable(mc, target, target != nil && s.deny.Revoked(m.Node, proto.AddrFrom(target.node.addr)))
	s.mu.Unlock()
	if !ok {
		s.sendOrClose(mc, unknown)
		return
	}
	p := &probe{target: target, asker: mc, lookup: m.ID, node: m.Node}
	id, ok := s.probes.open(p, func(id uint32) {
		if p := s.probes.take(id, nil); p != nil {
			s.sendOrClose(p.asker, p.answer(0))
		}
	})
	if !ok {
		s.log.WithField("node", mc.node.rec.Name).Warn("recovery lookup refused: too many probes pending")
		s.sendOrClose(mc, unknown)
		return
	}
	if err := target.send(&proto.FloorProbe{ID: id}); err != nil {
		target.conn.Close()
		if p := s.probes.take(id, nil); p != nil {
			p.timer.Stop()
			s.sendOrClose(mc, p.answer(0))
		}
	}
}

// floorStamp settles the probe a FloorStamp on mc answers.
func (s *Server) floorStamp(mc *session, m *proto.FloorStamp) {
	p := s.probes.take(m.ID, mc)
	if p == nil {
		s.log.WithField("node", mc.node.rec.Name).Debug("FloorStamp for no pending probe of this session: ignored")
		return
	}
	p.timer.Stop()
	s.sendOrClose(p.asker, p.answer(m.Stamp))
}

// sendOrClose sends msg to mc, closing the connection if it fails.
func (s *Server) sendOrClose(mc *session, msg proto.Message) {
	if err := mc.send(msg); err != nil {
		mc.conn.Close()
	}
}
