package server

import (
	"time"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
	sess "github.com/momgate/momgate/session"
)

// Sealed sessions at the server (docs/PROTOCOL.md 6.4 and 6.7): the
// policy of a control handshake (no unsealed session from a node that
// speaks sealed sessions), the nodes' marks and the pushes that travel on
// sealed control sessions only (the sealed-nodes set, im_security), the
// audit of a session that fails, and what list node shows of a session.

// controlWriteTimeout bounds every write on a control connection.
const controlWriteTimeout = 10 * time.Second

// imSecurityLocked is the cluster's im_security; an attribute never set
// (a cluster upgraded from before sealed sessions) is none. The caller
// holds s.mu.
func (s *Server) imSecurityLocked() sess.Protection {
	p, err := sess.ParseProtection(s.reg.attrs.IMSecurity)
	if err != nil {
		return sess.None
	}
	return p
}

// sessionPolicy is the registry's answer to a proof that says whether the
// MOM speaks sealed sessions: a node marked as speaking them is refused an
// unsealed session; the im_security goes into the Welcome's trailer.
func (s *Server) sessionPolicy(n *node, speaks bool) (uint8, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !speaks && n.rec.Sealed {
		return 0, handshake.Refuse(reasons.SessionDowngrade,
			"node %s has proved it speaks sealed sessions: an unsealed control session from it is refused (if its MOM was rolled back on purpose: set node %s sealed=false)",
			n.rec.Name, n.rec.Name)
	}
	return uint8(s.imSecurityLocked()), nil
}

// confirmSealed marks the node of a sealed session as speaking sealed
// sessions once a record of it has opened (key confirmation). Only the
// session's reader calls it.
func (s *Server) confirmSealed(mc *session) {
	if mc.confirmed || !mc.link.Sealed() || !mc.link.Confirmed() {
		return
	}
	mc.confirmed = true
	s.mu.Lock()
	defer s.mu.Unlock()
	if !mc.node.rec.Sealed {
		s.markSealedLocked(mc.node)
	}
}

// markSealedLocked sets n's mark, persists it and tells every MOM on a
// sealed session. The caller holds s.mu.
func (s *Server) markSealedLocked(n *node) {
	n.rec.Sealed = true
	if err := s.persistNodesLocked(n); err != nil {
		n.rec.Sealed = false
		s.log.WithError(err).WithField("node", n.rec.Name).Error("persist sealed-sessions mark; will retry at its next session")
		return
	}
	s.log.WithField("node", n.rec.Name).Info("node speaks sealed sessions: unsealed sessions with it are refused from now on")
	s.pushSealedLocked(proto.UpgradedAdd, []proto.NodeAddr{{Node: n.id, Addr: proto.AddrFrom(n.addr)}})
}

// clearSealedLocked is an administrator's rollback of n (set node
// sealed=false), or a node deleted or readdressed: every MOM forgets the
// mark of its id and address. The caller holds s.mu and persists.
func (s *Server) forgetSealedLocked(n *node, addr proto.Addr) {
	s.pushSealedLocked(proto.UpgradedRemove, []proto.NodeAddr{{Node: n.id, Addr: addr}})
}

// pushSealedLocked sends a SealedNodes change to every sealed session.
func (s *Server) pushSealedLocked(op uint8, entries []proto.NodeAddr) {
	frame := proto.Marshal(&proto.SealedNodes{Op: op, Entries: entries})
	for _, c := range s.conns {
		if c.link.Sealed() {
			s.enqueueLocked(c, pushItem{pushSealed, frame})
		}
	}
}

// startSealedLocked queues, first on a new sealed session, the cluster's
// im_security (it may have changed since the Welcome) and the whole set
// of nodes that speak sealed sessions. The caller holds s.mu.
func (s *Server) startSealedLocked(mc *session) {
	s.enqueueLocked(mc, pushItem{pushSealed, proto.Marshal(&proto.IMSecurity{Protection: uint8(s.imSecurityLocked())})})
	var all []proto.NodeAddr
	for _, n := range s.reg.sortedNodes() {
		if n.rec.Sealed {
			all = append(all, proto.NodeAddr{Node: n.id, Addr: proto.AddrFrom(n.addr)})
		}
	}
	op := proto.UpgradedReplace
	for first := true; first || len(all) > 0; first = false {
		k := min(len(all), upgradedChunk)
		s.enqueueLocked(mc, pushItem{pushSealed, proto.Marshal(&proto.SealedNodes{Op: op, Entries: all[:k]})})
		all, op = all[k:], proto.UpgradedAdd
	}
}

// imSecurityChanged pushes a changed im_security to every sealed session.
// Sessions already running keep their protection until they reconnect
// (docs/PROTOCOL.md 6.7): running jobs are not disturbed.
func (s *Server) imSecurityChanged(old, next Attrs) {
	s.mu.Lock()
	defer s.mu.Unlock()
	was, err := sess.ParseProtection(old.IMSecurity)
	if err != nil {
		was = sess.None
	}
	now := s.imSecurityLocked()
	if was == now {
		return
	}
	s.log.WithField("im_security", now.String()).Info("im_security changed: new IM sessions follow it")
	frame := proto.Marshal(&proto.IMSecurity{Protection: uint8(now)})
	for _, c := range s.conns {
		if c.link.Sealed() {
			s.enqueueLocked(c, pushItem{pushSealed, frame})
		}
	}
}

// sessionFailed audits and counts a record that failed on a control
// session (session_auth, session_replay, ...); other read errors (the MOM
// went away) are not refusals.
func (s *Server) sessionFailed(mc *session, err error) {
	if !mc.link.Report(err) {
		return
	}
	s.base.Record(audit.Entry{Channel: audit.ChannelControl, Outcome: audit.Rejected, Reason: sess.Reason(err),
		Peer: daemon.PeerAddrPort(mc.conn), Node: mc.node.rec.Name, Detail: "sealed session closed: " + err.Error()})
}

// startTicker starts the rekey ticker of a session's link; a session whose
// keys expire (the MOM stopped answering its rekey) is closed, audited.
func (s *Server) startTicker(mc *session) {
	mc.link.Start(func(err error) { s.sessionFailed(mc, err) })
}

// withSession adds to a node's info what its control session shows: the
// protection and the key age, and the sealed-sessions mark. The caller
// holds s.mu.
func (s *Server) withSessionLocked(ni admin.NodeInfo, n *node) admin.NodeInfo {
	ni.Sealed = n.rec.Sealed
	if c := s.conns[n.id]; c != nil && c.link != nil {
		in := c.link.Info()
		ni.Session = in.Protection.String()
		ni.SessionKeyAge = in.KeyAge.Round(100 * time.Millisecond).String()
	}
	return ni
}
