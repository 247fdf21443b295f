package server

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// A control session once admitted: its ordered push queue and the one
// writer that drains it, and its read loop, one per version (v2 here,
// v1 in legacy.go).

// maxControlFrame caps frames from an authenticated MOM.
const maxControlFrame = 64 << 10

// controlReadBuffer is the read buffer of a control session: a heartbeat
// Ping (124 bytes) or a KeyAck fits.
const controlReadBuffer = 160

// session is an authenticated control session. v1, versions and mode are
// guarded by Server.mu; q is started by startSession, under Server.mu.
type session struct {
	conn          net.Conn
	link          *daemon.Link  // every frame once admitted, sealed or not (sealed.go)
	rd            *bufio.Reader // what link reads through (nil: the connection)
	remote, local proto.Addr    // the connection's two addresses, which PINGs name
	node          *node

	v1       bool       // the session speaks v1 (LegacyHello)
	versions uint8      // versions the MOM advertised
	mode     proto.Mode // the mode the MOM was last told

	q pushQueue // the ordered push queue, started by startSession

	confirmed bool // a sealed record of the MOM opened (reader only; sealed.go)

	// What the Welcome gave the MOM (for the key rotation).
	held   []keys.KeyID
	active keys.KeyID

	// The stamps of the last two PINGs admitted on this session (the
	// swap's, then heartbeats), oldest first, and when the last came: what
	// the server attests the node by (floor.go). Guarded by Server.mu.
	stamps   [2]uint64
	stamped  int
	lastPing time.Time

	// floorProbe: the session is sealed and both ends proved the
	// recovery attestation (probe.go); set before the session starts.
	floorProbe bool
}

// recordStamp records an admitted PING of the session's node. The caller
// holds Server.mu.
func (c *session) recordStamp(ts uint64, now time.Time) {
	c.stamps[0], c.stamps[1] = c.stamps[1], ts
	c.stamped = min(c.stamped+1, 2)
	c.lastPing = now
}

// send writes one frame to the MOM outside the push queue (the link
// orders it with the queue's frames and bounds the write).
func (c *session) send(m proto.Message) error { return c.link.Send(m) }

// pushQueueLen bounds the frames waiting for one MOM; a MOM that falls this
// far behind is disconnected and gets the whole state again on reconnect.
const pushQueueLen = 256

// pushQueue is a session's ordered push queue. It holds memory and a
// writer goroutine only while frames wait: an idle session, the common
// case at 10,000 nodes, has neither (a channel of pushQueueLen items cost
// 8 KiB per session, and its writer goroutine a stack). Frames are
// written in the order they were queued, by one writer at a time.
type pushQueue struct {
	mu      sync.Mutex
	started bool       // startSession ran: frames are taken
	closed  bool       // the session ended: frames are dropped
	writing bool       // a writer goroutine drains items
	items   []pushItem // waiting, oldest first; nil when none
	writers sync.WaitGroup
}

// push queues it and reports whether it was taken (false: not started,
// closed, or full); it starts a writer if none runs.
func (q *pushQueue) push(it pushItem, write func()) (taken, full bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.started || q.closed {
		return false, false
	}
	if len(q.items) >= pushQueueLen {
		return false, true
	}
	q.items = append(q.items, it)
	if !q.writing {
		q.writing = true
		q.writers.Add(1)
		go func() {
			defer q.writers.Done()
			write()
		}()
	}
	return true, false
}

// next takes the oldest waiting frame; ok is false when there is none or
// the session ended, and then the writer must return (it is no longer
// counted as running).
func (q *pushQueue) next() (it pushItem, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.items) == 0 {
		q.writing, q.items = false, nil
		return pushItem{}, false
	}
	it = q.items[0]
	q.items[0] = pushItem{}
	q.items = q.items[1:]
	return it, true
}

// fail is the writer's own stop after a failed write: it drops what waits
// and takes nothing more; the writer returns.
func (q *pushQueue) fail() {
	q.mu.Lock()
	q.closed, q.writing, q.items = true, false, nil
	q.mu.Unlock()
}

// stop drops what waits and waits for a running writer to end.
func (q *pushQueue) stop() {
	q.mu.Lock()
	q.closed, q.items = true, nil
	q.mu.Unlock()
	q.writers.Wait()
}

// active reports whether the queue takes frames.
func (q *pushQueue) active() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.started && !q.closed
}

// pushKind says what a queued frame is, for the counters.
type pushKind uint8

const (
	pushList pushKind = iota + 1
	pushUpgraded
	pushMode
	pushDeny   // Deny, DenyLift or DenySet: in order with each other
	pushSealed // IMSecurity, SealedNodes: sealed sessions only (sealed.go)
	pushClose  // close the connection once the frames before it are written
)

// pushItem is one frame in a session's push queue.
type pushItem struct {
	kind  pushKind
	frame []byte
}

// register makes mc the node's session, closing an older one.
func (s *Server) register(mc *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.conns[mc.node.id]; old != nil {
		old.conn.Close() // the MOM reconnected; the old connection is dead
	}
	s.conns[mc.node.id] = mc
	mc.node.up = true
	mc.node.lastSeen = s.cfg.Now()
}

// unregister drops mc if it is still the node's session.
func (s *Server) unregister(mc *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[mc.node.id] == mc {
		delete(s.conns, mc.node.id)
		mc.node.up = false
	}
	if s.lg.listConns[mc.node.id] == mc {
		delete(s.lg.listConns, mc.node.id)
	}
}

// startSession starts a registered session's push queue and its writer.
// First in the queue: the deny list (v2), a Mode if the mode changed since
// the ServerHello, and the address list and the upgraded set when the MOM
// needs them; a MOM that speaks PING only is marked upgraded. Every later
// push follows in order. The returned function stops the writer.
func (s *Server) startSession(mc *session) (stop func()) {
	s.mu.Lock()
	if !mc.v1 {
		mc.versions = mc.node.versions
	}
	mc.q.mu.Lock()
	mc.q.started = true
	mc.q.mu.Unlock()
	if speaksV1(mc) && s.conns[mc.node.id] == mc {
		s.lg.listConns[mc.node.id] = mc
	}
	if ds := s.denySet(); keyed(mc) && ds != nil {
		// The deny list as of now, first in the queue: every later Deny
		// or DenyLift follows it in order, whatever the rotor's DenySet
		// (sent before the queue started) missed.
		s.enqueueLocked(mc, pushItem{pushDeny, proto.Marshal(ds)})
	}
	mode := s.modeLocked()
	if mc.mode != mode {
		s.tellModeLocked(mc, mode)
	}
	if migration.NeedsList(mode, mc.versions) {
		s.enqueueLocked(mc, pushItem{pushList, s.listFrameLocked()})
		s.enqueueUpgradedSetLocked(mc)
	}
	if !mc.v1 && migration.Upgrades(mc.versions) && !mc.node.rec.Upgraded {
		s.markUpgradedLocked(mc.node)
	}
	if mc.link.Sealed() {
		s.startSealedLocked(mc) // the sealed-nodes set (sealed.go)
	}
	s.mu.Unlock()
	return mc.q.stop
}

// pushWriter writes a session's queued frames in order until none waits
// or the session ends.
func (s *Server) pushWriter(mc *session) {
	for {
		it, ok := mc.q.next()
		if !ok {
			return
		}
		if it.kind == pushClose {
			mc.conn.Close()
			continue
		}
		if err := mc.link.WriteFrame(it.frame); err != nil {
			mc.conn.Close()
			mc.q.fail()
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
// A session not started yet gets the current state from startSession.
func (s *Server) enqueueLocked(mc *session, it pushItem) {
	if _, full := mc.q.push(it, func() { s.pushWriter(mc) }); full {
		s.lg.overflows.Add(1)
		s.log.WithField("node", mc.node.rec.Name).Warn("push queue full: disconnecting the MOM so it resynchronises")
		mc.conn.Close()
	}
}

// sessionLoop serves a registered session until it ends: legacyLoop for
// v1, controlLoop for v2.
func (s *Server) sessionLoop(ctx context.Context, mc *session) error {
	if mc.v1 {
		return s.legacyLoop(ctx, mc)
	}
	return s.controlLoop(ctx, mc)
}

// controlLoop serves a v2 session's heartbeats and acknowledgements until
// the connection ends. Three missed heartbeats close it. It waits for a
// frame in this loop itself, with the stack of this loop only: between
// frames an idle session's goroutine keeps no more than it uses while it
// waits (4 KiB), the frame's work happening in controlFrame. The link
// reads through mc.rd (one read(2) per heartbeat).
func (s *Server) controlLoop(ctx context.Context, mc *session) error {
	var rdl time.Time // the read deadline set
	for ctx.Err() == nil {
		s.mu.Lock()
		idle := 3*time.Duration(s.reg.attrs.Heartbeat) + 5*time.Second
		s.mu.Unlock()
		// The deadline moves only when it has come a second closer (or
		// the heartbeat interval shrank): not a timer update per frame.
		if now := time.Now(); rdl.Sub(now) < idle-time.Second || rdl.Sub(now) > idle {
			rdl = now.Add(idle)
			if err := mc.conn.SetReadDeadline(rdl); err != nil {
				return err
			}
		}
		if mc.rd != nil {
			if _, err := mc.rd.Peek(1); err != nil {
				s.sessionFailed(mc, err)
				return err
			}
		}
		if err := s.controlFrame(mc); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// controlFrame reads one frame of a v2 session and handles it.
func (s *Server) controlFrame(mc *session) error {
	frame, err := mc.link.ReadFrame()
	if err != nil {
		s.sessionFailed(mc, err)
		return err
	}
	s.confirmSealed(mc)
	switch proto.Type(frame[3]) {
	case proto.TypePing:
		var res ping.Result
		// The link bounds the write and orders it with the pushes.
		if err := handshake.Respond(mc.link.Writer(), frame, mc.remote, mc.local, s.sealer, s.base.Verifier, &res); err != nil {
			s.base.Record(audit.Entry{Channel: audit.ChannelControl, Outcome: audit.Rejected, Reason: ping.Reason(err),
				Peer: daemon.PeerAddrPort(mc.conn), Node: mc.node.rec.Name, Detail: "heartbeat: " + err.Error()})
			return err
		}
		s.mu.Lock()
		mc.node.lastSeen = s.cfg.Now()
		mc.node.keyID = keys.KeyID(res.KeyID)
		mc.recordStamp(res.Timestamp, mc.node.lastSeen)
		s.mu.Unlock()
	default:
		msg, err := proto.Unmarshal(frame)
		if err != nil {
			return fmt.Errorf("decode frame from %s: %w", mc.node.rec.Name, err)
		}
		if ack, ok := msg.(*proto.KeyAck); ok {
			s.rot.ack(mc, ack, len(frame))
			return nil
		}
		if s.handleMomMessage(mc, msg) {
			return nil
		}
		s.log.WithFields(logrus.Fields{"node": mc.node.rec.Name, "type": msg.Type().String()}).Debug("ignored control message")
	}
	return nil
}

// handleMomMessage handles the messages a MOM may send on a session of
// either version (NodeLookup), NameLookup (v2 only by its type) or, on a
// PING session, FloorLookup; it
// reports whether msg was one of them.
func (s *Server) handleMomMessage(mc *session, msg proto.Message) bool {
	switch m := msg.(type) {
	case *proto.NameLookup:
		if !keyed(mc) {
			return false // only a MOM the server authenticated may ask
		}
		if err := mc.send(s.nodeName(m)); err != nil {
			mc.conn.Close()
		}
		return true
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
	case *proto.FloorLookup:
		if !keyed(mc) {
			return false // only a MOM the server authenticated may ask
		}
		if err := mc.send(s.floorAnswer(m)); err != nil {
			mc.conn.Close()
		}
		return true
	case *proto.RecoveryLookup:
		if !keyed(mc) {
			return false
		}
		s.recoveryLookup(mc, m) // probe.go
		return true
	case *proto.FloorStamp:
		if !keyed(mc) {
			return false
		}
		s.floorStamp(mc, m)
		return true
	}
	return false
}

// keyed reports whether c is a v2 control session, which carries keys (a
// legacy v1 session does not).
func keyed(c *session) bool { return c != nil && !c.v1 }
