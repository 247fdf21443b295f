package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// pushQueueLen bounds the frames waiting for one MOM; a MOM that falls this
// far behind is disconnected and gets the whole state again on reconnect.
const pushQueueLen = 256

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
}

type pushKind uint8

const (
	pushList pushKind = iota + 1
	pushUpgraded
	pushMode
	pushDeny  // Deny, DenyLift or DenySet: in order with each other
	pushClose // close the connection once the frames before it are written
)

type pushItem struct {
	kind  pushKind
	frame []byte
}

// connLegacy is a control session's legacy state. Fields other than q and
// done are guarded by Server.mu.
type connLegacy struct {
	v1       bool       // the session speaks v1 (LegacyHello)
	versions uint8      // versions the MOM advertised
	mode     proto.Mode // the mode the MOM was last told
	q        chan pushItem
	done     chan struct{}
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

// legacyHello registers a MOM that speaks v1: it is known by its source
// address, as OpenPBS knows its MOMs. No PING, no key.
func (s *Server) legacyHello(c net.Conn, m *proto.LegacyHello, src netip.Addr, mode proto.Mode) (*momConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.reg.byAddr(src)
	if n == nil {
		return nil, handshake.Refuse(reasons.UnknownNode, "no node has address %s", src)
	}
	mc := &momConn{conn: c, node: n}
	if m.Name != "" && m.Name != n.rec.Name {
		return mc, handshake.Refuse(reasons.UnknownNode, "legacy hello names node %q, but %s is node %s", m.Name, src, n.rec.Name)
	}
	if s.deny.Revoked(n.id, proto.AddrFrom(src)) {
		return mc, handshake.Refuse(reasons.Revoked, "node %s is revoked", n.rec.Name)
	}
	if n.rec.Upgraded {
		s.lg.downgrades.Add(1)
		return mc, handshake.Refuse(migration.RefuseDowngrade,
			"node %s is upgraded (it has spoken PING only): legacy hello refused; roll it back with set node %s upgraded=false", n.rec.Name, n.rec.Name)
	}
	n.versions = m.Versions
	n.protocol = "v1"
	s.lg.v1Accepted.Add(1)
	mc.lg = &connLegacy{v1: true, versions: m.Versions, mode: mode}
	return mc, nil
}

// setVersions records the versions a MOM advertised in its hello proof.
func (s *Server) setVersions(n *node, versions uint8) {
	s.mu.Lock()
	n.versions = versions
	s.mu.Unlock()
}

// startLegacy starts a registered session's push queue: the reply to its
// hello (the address list and the upgraded set, when the MOM needs them),
// a Mode if the mode changed since its ServerHello, and the no-downgrade
// mark if it speaks PING only. The returned function stops the queue.
func (s *Server) startLegacy(mc *momConn) (stop func()) {
	s.mu.Lock()
	if mc.lg == nil {
		mc.lg = &connLegacy{mode: s.modeLocked()}
	}
	lg := mc.lg
	if !lg.v1 {
		lg.versions = mc.node.versions
	}
	lg.q = make(chan pushItem, pushQueueLen)
	lg.done = make(chan struct{})
	if keyed(mc) {
		// The deny list as of now, first in the queue: every later Deny
		// or DenyLift follows it in order, whatever the rotor's DenySet
		// (sent before the queue started) missed.
		s.enqueueLocked(mc, pushItem{pushDeny, proto.Marshal(s.denySet())})
	}
	mode := s.modeLocked()
	if lg.mode != mode {
		s.tellModeLocked(mc, mode)
	}
	if migration.NeedsList(mode, lg.versions) {
		s.enqueueLocked(mc, pushItem{pushList, s.listFrameLocked()})
		s.enqueueUpgradedSetLocked(mc)
	}
	if !lg.v1 && migration.Upgrades(lg.versions) && !mc.node.rec.Upgraded {
		s.markUpgradedLocked(mc.node)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.pushWriter(mc)
	}()
	return func() {
		close(lg.done)
		wg.Wait()
	}
}

// pushWriter writes a session's queued frames in order until stopped.
func (s *Server) pushWriter(mc *momConn) {
	lg := mc.lg
	for {
		var it pushItem
		select {
		case <-lg.done:
			return
		case it = <-lg.q:
		}
		if it.kind == pushClose {
			mc.conn.Close()
			continue
		}
		mc.wmu.Lock()
		err := mc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err == nil {
			_, err = mc.conn.Write(it.frame)
		}
		mc.wmu.Unlock()
		if err != nil {
			mc.conn.Close()
			return
		}
		n := uint64(len(it.frame))
		switch it.kind {
		case pushList:
			s.lg.pushMsgs.Add(1)
			s.lg.pushBytes.Add(n)
		case pushUpgraded:
			s.lg.upgradeMsgs.Add(1)
			s.lg.upgradeBytes.Add(n)
		case pushMode:
			s.lg.modeMsgs.Add(1)
		}
	}
}

// enqueueLocked queues a frame for mc without blocking; a full queue
// disconnects the MOM, which gets everything again when it reconnects.
func (s *Server) enqueueLocked(mc *momConn, it pushItem) {
	if mc.lg == nil || mc.lg.q == nil {
		return // not started yet: startLegacy sends the current state
	}
	select {
	case mc.lg.q <- it:
	default:
		s.lg.overflows.Add(1)
		s.log.WithField("node", mc.node.rec.Name).Warn("push queue full: disconnecting the MOM so it resynchronises")
		mc.conn.Close()
	}
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

// upgradedChunk is the most NodeUpgraded entries per frame: a frame must
// stay under proto.MaxFrameSize.
const upgradedChunk = (proto.MaxFrameSize - proto.HeaderSize - 3) / 32

// enqueueUpgradedSetLocked queues NodeUpgraded frames that replace the
// MOM's set with every upgraded node: a Replace, then Adds if the set does
// not fit one frame.
func (s *Server) enqueueUpgradedSetLocked(mc *momConn) {
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

// membershipChangedLocked pushes the new address list to every MOM that
// needs lists: the legacy protocol's answer to create, delete and
// readdress. In ping mode nothing is sent.
func (s *Server) membershipChangedLocked() {
	s.lg.list = nil
	mode := s.modeLocked()
	var frame []byte
	for _, c := range s.conns {
		if c.lg != nil && migration.NeedsList(mode, c.lg.versions) {
			if frame == nil {
				frame = s.listFrameLocked()
			}
			s.enqueueLocked(c, pushItem{pushList, frame})
		}
	}
}

// pushUpgradedLocked sends a NodeUpgraded change to every MOM that needs
// lists (the MOMs that still admit by list).
func (s *Server) pushUpgradedLocked(op uint8, n *node) {
	frame := proto.Marshal(&proto.NodeUpgraded{Op: op, Entries: []proto.NodeAddr{{Node: n.id, Addr: proto.AddrFrom(n.addr)}}})
	mode := s.modeLocked()
	for _, c := range s.conns {
		if c.lg != nil && migration.NeedsList(mode, c.lg.versions) {
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

// tellModeLocked queues a Mode for mc, and a close if its session is not
// allowed in mode m (the MOM reconnects with what m allows).
func (s *Server) tellModeLocked(mc *momConn, m proto.Mode) {
	ver := proto.V2
	if mc.lg.v1 {
		ver = proto.V1
	}
	s.enqueueLocked(mc, pushItem{pushMode, proto.Marshal(&proto.ModeMsg{Ver: ver, Mode: m})})
	if !sessionAllowed(m, mc.lg.v1) {
		s.enqueueLocked(mc, pushItem{kind: pushClose})
	}
	mc.lg.mode = m
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
		if c.lg == nil || c.lg.q == nil {
			continue
		}
		s.tellModeLocked(c, mode)
		if sessionAllowed(mode, c.lg.v1) && migration.NeedsList(mode, c.lg.versions) && !migration.NeedsList(oldMode, c.lg.versions) {
			s.enqueueLocked(c, pushItem{pushList, s.listFrameLocked()})
			s.enqueueUpgradedSetLocked(c)
		}
	}
	s.log.WithFields(logrus.Fields{"from": old, "to": next, "sessions": len(s.conns)}).Info("protocol mode changed")
}

// sessionLoop serves a registered session until it ends.
func (s *Server) sessionLoop(ctx context.Context, mc *momConn) error {
	if mc.lg != nil && mc.lg.v1 {
		return s.legacyLoop(ctx, mc)
	}
	return s.controlLoop(ctx, mc)
}

// legacyLoop serves a v1 session: there are no heartbeats (TCP keepalive
// finds a dead peer); the MOM may look nodes up.
func (s *Server) legacyLoop(ctx context.Context, mc *momConn) error {
	buf := make([]byte, 0, 512)
	for ctx.Err() == nil {
		if err := mc.conn.SetReadDeadline(time.Time{}); err != nil {
			return err
		}
		frame, err := proto.ReadFrameLimit(mc.conn, buf[:cap(buf)], maxControlFrame)
		if err != nil {
			return err
		}
		msg, err := proto.Unmarshal(frame)
		if err != nil {
			return fmt.Errorf("decode frame from %s: %w", mc.node.rec.Name, err)
		}
		if !s.handleMomMessage(mc, msg) {
			s.log.WithFields(logrus.Fields{"node": mc.node.rec.Name, "type": msg.Type().String()}).Debug("ignored legacy message")
		}
	}
	return ctx.Err()
}

// handleMomMessage handles the migration's messages from a MOM on any
// session; it reports whether msg was one of them.
func (s *Server) handleMomMessage(mc *momConn, msg proto.Message) bool {
	switch m := msg.(type) {
	case *proto.NodeLookup:
		reply := &proto.NodeAddress{Ver: m.Ver, ID: m.ID, Name: m.Name, Status: proto.LookupUnknown}
		s.mu.Lock()
		if n := s.reg.byName[m.Name]; n != nil {
			reply.Status, reply.Addr, reply.Port = proto.LookupFound, proto.AddrFrom(n.addr), uint16(n.rec.Port)
		}
		s.mu.Unlock()
		s.lg.lookups.Add(1)
		if err := mc.send(reply); err != nil {
			mc.conn.Close()
		}
		return true
	}
	return false
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
		if c.lg == nil {
			continue
		}
		if c.lg.v1 {
			st.V1Sessions++
		}
		if migration.NeedsList(mode, c.lg.versions) {
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

// legacyAdmin handles the admin operations of the migration; handled is
// false for any other op.
func (s *Server) legacyAdmin(op string, raw json.RawMessage) (res any, handled bool, err error) {
	switch op {
	case admin.OpSetNode:
		var a admin.SetArgs
		if err := decodeArgs(raw, &a); err != nil {
			return nil, true, err
		}
		res, err := s.setNode(a)
		return res, true, err
	}
	return nil, false, nil
}

// setNode changes node attributes, all or nothing: Mom=ADDR readdresses the
// node (a membership change: lists are pushed), protocol=legacy or
// upgraded=false roll it back (its no-downgrade mark is cleared).
func (s *Server) setNode(a admin.SetArgs) (*admin.NodeInfo, error) {
	if len(a.Attrs) == 0 {
		return nil, admin.Errorf(admin.CodeBadRequest, "set node needs ATTR=VALUE")
	}
	var newAddr netip.Addr
	rollback := false
	for _, kv := range a.Attrs {
		v := strings.TrimSpace(kv.Value)
		switch strings.ToLower(kv.Name) {
		case "mom":
			addr, err := netip.ParseAddr(v)
			if err != nil || addr.Zone() != "" {
				return nil, admin.Errorf(admin.CodeBadValue, "Mom=%q is not an IP address", kv.Value)
			}
			addr = addr.Unmap()
			if addr.IsUnspecified() || addr.IsMulticast() {
				return nil, admin.Errorf(admin.CodeBadValue, "Mom=%s cannot be a node address", addr)
			}
			newAddr = addr
		case "protocol":
			if !strings.EqualFold(v, "legacy") {
				return nil, admin.Errorf(admin.CodeBadValue, "protocol=%q: only legacy can be set (a node becomes PING-only by speaking it)", kv.Value)
			}
			rollback = true
		case "upgraded":
			if !strings.EqualFold(v, "false") {
				return nil, admin.Errorf(admin.CodeBadValue, "upgraded=%q: only false can be set (a node is marked when it speaks PING only)", kv.Value)
			}
			rollback = true
		default:
			return nil, admin.Errorf(admin.CodeBadValue, "unknown node attribute %q (settable: Mom, protocol=legacy, upgraded=false)", kv.Name)
		}
	}
	var info admin.NodeInfo
	// apply makes the change under s.mu; it reports whether the node was
	// readdressed and holds a cluster key (then the key is rotated).
	apply := func() (bool, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		n := s.reg.byName[a.Name]
		if n == nil {
			return false, admin.Errorf(admin.CodeUnknownNode, "unknown node %s", a.Name)
		}
		old, oldAddr := n.rec, n.addr
		readdress := newAddr.IsValid() && newAddr != n.addr
		if readdress {
			if other := s.reg.byAddr(newAddr); other != nil {
				return false, admin.Errorf(admin.CodeDuplicateNode, "address %s already belongs to node %s", newAddr, other.rec.Name)
			}
			n.setAddr(newAddr)
		}
		cleared := rollback && n.rec.Upgraded
		if rollback {
			n.rec.Upgraded = false
		}
		if readdress || cleared {
			if err := s.persistLocked(); err != nil {
				n.rec, n.addr = old, oldAddr
				return false, fmt.Errorf("persist: %w", err)
			}
		}
		if cleared {
			s.log.WithField("node", n.rec.Name).Warn("node rolled back by the administrator: legacy admission of it allowed again")
		}
		if cleared || (readdress && n.rec.Upgraded) {
			s.pushUpgradedLocked(proto.UpgradedRemove, &node{id: n.id, addr: oldAddr})
		}
		if readdress && n.rec.Upgraded {
			s.pushUpgradedLocked(proto.UpgradedAdd, n)
		}
		if readdress {
			s.log.WithFields(logrus.Fields{"node": n.rec.Name, "from": oldAddr.String(), "to": newAddr.String()}).Info("node readdressed")
			s.membershipChangedLocked()
			if n.enrolled() {
				// PINGs naming the old address are refused from now on,
				// here and on every MOM; the node's connection, from the
				// old address, is closed (docs/KEYS.md). A node that
				// never enrolled holds no key: the pushed list is enough.
				s.readdressedLocked(n, oldAddr)
			} else {
				// Its new address is given to a node again all the
				// same: a deny of it is lifted, or the node could
				// never enrol there.
				s.liftDenyLocked(n.addr)
			}
		}
		info = n.info(s.activeKeyID())
		return readdress && n.enrolled(), nil
	}
	if !newAddr.IsValid() {
		_, err := apply()
		return &info, err
	}
	// A new address: the change and the key rotation that follows it
	// (as HACMP and Sun Cluster prescribe) are one crash-safe step.
	err := s.rot.changeAndRotate(fmt.Sprintf("set node %s Mom=%s", a.Name, newAddr), func() ([]proto.NodeID, bool, error) {
		rotate, err := apply()
		return nil, rotate, err
	})
	if err != nil {
		return nil, err
	}
	return &info, nil
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
