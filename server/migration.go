package server

import (
	"net/netip"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// The migration between the protocols (docs/PROTOCOL.md 4.3 to 4.6): the
// server's mode, the address lists and the upgraded set it pushes to the
// MOMs that need them, and the counters of what it pushed and refused.

// legacyServer is the server's state for the legacy protocol (v1) and the
// migration: what it pushed and refused. Counters are exact.
type legacyServer struct {
	pushMsgs, pushBytes       atomic.Uint64 // ClusterAddrs frames written
	upgradeMsgs, upgradeBytes atomic.Uint64 // NodeUpgraded frames written
	modeMsgs                  atomic.Uint64 // Mode frames written
	v1Accepted                atomic.Uint64 // legacy hellos accepted
	v1Refused                 atomic.Uint64 // legacy hellos refused in ping mode
	v2Refused                 atomic.Uint64 // PING hellos refused in legacy mode
	downgrades                atomic.Uint64 // legacy hellos of upgraded nodes refused
	overflows                 atomic.Uint64 // MOMs disconnected for a full push queue
	lookups                   atomic.Uint64 // NodeLookup requests answered

	list []byte // guarded by Server.mu: the current ClusterAddrs frame, nil to rebuild
	// listConns are the started sessions of MOMs that speak v1, the only
	// ones the pushes of lists and upgraded sets can be for (NeedsList);
	// guarded by Server.mu. Iterating them instead of every session keeps
	// a create, delete or enrollment O(1) in a PING-only cluster, where
	// it was O(connected nodes), O(N^2) for N enrollments.
	listConns map[proto.NodeID]*session
}

// speaksV1 reports whether a session's MOM can ever need lists.
func speaksV1(mc *session) bool { return mc.v1 || mc.versions&proto.VersionBitV1 != 0 }

// countRefusal counts the refusals of the migration's modes.
func (s *Server) countRefusal(r reasons.Reason) {
	switch r {
	case migration.RefuseV1:
		s.lg.v1Refused.Add(1)
	case migration.RefuseV2:
		s.lg.v2Refused.Add(1)
	}
}

// modeLocked is the server's mode; the caller holds s.mu.
func (s *Server) modeLocked() proto.Mode {
	m, _ := proto.ParseMode(s.reg.attrs.Mode)
	return m
}

// sessionAllowed reports whether a session of that version may stay up in
// mode m: legacy refuses v2 sessions and ping refuses v1 ones.
func sessionAllowed(m proto.Mode, v1 bool) bool {
	bit := proto.VersionBitV2
	if v1 {
		bit = proto.VersionBitV1
	}
	return migration.ServerVersions(m)&bit != 0
}

// tellModeLocked queues a Mode for mc, and a close if its session is not
// allowed in mode m (the MOM reconnects with what m allows).
func (s *Server) tellModeLocked(mc *session, m proto.Mode) {
	ver := proto.V2
	if mc.v1 {
		ver = proto.V1
	}
	s.enqueueLocked(mc, pushItem{pushMode, proto.Marshal(&proto.ModeMsg{Ver: ver, Mode: m})})
	if !sessionAllowed(m, mc.v1) {
		s.enqueueLocked(mc, pushItem{kind: pushClose})
	}
	mc.mode = m
}

// modeChanged tells every MOM the new mode. MOMs that follow the server
// reconnect speaking what it allows; sessions the mode refuses are closed;
// MOMs that need lists from now on get the list and the upgraded set.
func (s *Server) modeChanged(old, next string) {
	if old == next {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	oldMode, _ := proto.ParseMode(old)
	mode := s.modeLocked()
	for _, c := range s.conns {
		if !c.q.active() {
			continue // not started yet: startSession sends the current state
		}
		s.tellModeLocked(c, mode)
		if sessionAllowed(mode, c.v1) && migration.NeedsList(mode, c.versions) && !migration.NeedsList(oldMode, c.versions) {
			s.enqueueLocked(c, pushItem{pushList, s.listFrameLocked()})
			s.enqueueUpgradedSetLocked(c)
		}
	}
	s.log.WithFields(logrus.Fields{"from": old, "to": next, "sessions": len(s.conns)}).Info("protocol mode changed")
}

// listFrameLocked is the current address list frame, built once per
// membership change.
func (s *Server) listFrameLocked() []byte {
	if s.lg.list == nil {
		addrs := make([]netip.Addr, 0, len(s.reg.byName))
		for _, n := range s.reg.byName {
			addrs = append(addrs, n.addr)
		}
		s.lg.list = migration.ListFrame(addrs)
	}
	return s.lg.list
}

// membershipChangedLocked pushes the new address list to every MOM that
// needs lists: the legacy protocol's answer to create, delete and
// readdress. In ping mode nothing is sent.
func (s *Server) membershipChangedLocked() {
	s.lg.list = nil
	mode := s.modeLocked()
	var frame []byte
	for _, c := range s.lg.listConns {
		if migration.NeedsList(mode, c.versions) {
			if frame == nil {
				frame = s.listFrameLocked()
			}
			s.enqueueLocked(c, pushItem{pushList, frame})
		}
	}
}

// upgradedChunk is the most NodeUpgraded entries per frame: a frame must
// stay under proto.MaxFrameSize.
const upgradedChunk = (proto.MaxFrameSize - proto.HeaderSize - 3) / 32

// enqueueUpgradedSetLocked queues NodeUpgraded frames that replace the
// MOM's set with every upgraded node: a Replace, then Adds if the set does
// not fit one frame.
func (s *Server) enqueueUpgradedSetLocked(mc *session) {
	var all []proto.NodeAddr
	for _, n := range s.reg.sortedNodes() {
		if n.rec.Upgraded {
			all = append(all, proto.NodeAddr{Node: n.id, Addr: proto.AddrFrom(n.addr)})
		}
	}
	op := proto.UpgradedReplace
	for {
		k := min(len(all), upgradedChunk)
		s.enqueueLocked(mc, pushItem{pushUpgraded, proto.Marshal(&proto.NodeUpgraded{Op: op, Entries: all[:k]})})
		all, op = all[k:], proto.UpgradedAdd
		if len(all) == 0 {
			return
		}
	}
}

// pushUpgradedLocked sends a NodeUpgraded change to every MOM that needs
// lists (the MOMs that still admit by list).
func (s *Server) pushUpgradedLocked(op uint8, n *node) {
	if len(s.lg.listConns) == 0 {
		return
	}
	frame := proto.Marshal(&proto.NodeUpgraded{Op: op, Entries: []proto.NodeAddr{{Node: n.id, Addr: proto.AddrFrom(n.addr)}}})
	mode := s.modeLocked()
	for _, c := range s.lg.listConns {
		if migration.NeedsList(mode, c.versions) {
			s.enqueueLocked(c, pushItem{pushUpgraded, frame})
		}
	}
}

// markUpgradedLocked sets n's no-downgrade mark, persists it and tells the
// MOMs that admit by list.
func (s *Server) markUpgradedLocked(n *node) {
	n.rec.Upgraded = true
	// Only this node's record changed: O(1), not a whole-registry save
	// per newly upgraded MOM (O(N^2) when 10,000 MOMs first connect).
	if err := s.persistNodesLocked(n); err != nil {
		n.rec.Upgraded = false
		s.log.WithError(err).WithField("node", n.rec.Name).Error("persist upgrade mark; will retry on the next PING-only hello")
		return
	}
	s.log.WithField("node", n.rec.Name).Info("node upgraded: it speaks PING only; legacy admission of it refused from now on")
	s.pushUpgradedLocked(proto.UpgradedAdd, n)
}

// legacyStatsLocked reports the legacy counters; the caller holds s.mu.
func (s *Server) legacyStatsLocked() *admin.LegacyStats {
	st := &admin.LegacyStats{
		PushMessages: s.lg.pushMsgs.Load(), PushBytes: s.lg.pushBytes.Load(),
		UpgradeMessages: s.lg.upgradeMsgs.Load(), UpgradeBytes: s.lg.upgradeBytes.Load(),
		ModeMessages: s.lg.modeMsgs.Load(), V1Accepted: s.lg.v1Accepted.Load(), V1Refused: s.lg.v1Refused.Load(),
		V2Refused: s.lg.v2Refused.Load(), Downgrades: s.lg.downgrades.Load(), Overflows: s.lg.overflows.Load(),
		Lookups: s.lg.lookups.Load(),
	}
	list := s.listFrameLocked()
	st.ListBytes = len(list)
	st.ListRuns = (len(list) - proto.HeaderSize - 4) / 8
	mode := s.modeLocked()
	for _, c := range s.conns {
		if c.v1 {
			st.V1Sessions++
		}
		if migration.NeedsList(mode, c.versions) {
			st.ListSessions++
		}
	}
	for _, n := range s.reg.byName {
		if n.rec.Upgraded {
			st.Upgraded++
		}
	}
	return st
}

// legacyMetricHooks feeds the metrics of legacy mode: list pushes and
// their bytes, and nodes by the protocol they speak (legacy nodes need not
// enroll, so they count once they have spoken v1).
func (s *Server) legacyMetricHooks() {
	s.hooks.legacy = func() (uint64, uint64) { return s.lg.pushMsgs.Load(), s.lg.pushBytes.Load() }
	s.hooks.nodesByProtocol = func() map[string]int {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := map[string]int{"v1": 0, "v2": 0}
		for _, n := range s.reg.byName {
			switch {
			case n.protocol != "":
				out[n.protocol]++
			case n.enrolled():
				out["v2"]++
			}
		}
		return out
	}
}
