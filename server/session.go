package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
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
// guarded by Server.mu; q and done are set by startSession, under
// Server.mu, before the writer starts.
type session struct {
	conn          net.Conn
	remote, local proto.Addr // the connection's two addresses, which PINGs name
	node          *node
	wmu           sync.Mutex // one frame at a time on conn
	wdl           time.Time  // the write deadline set on conn; guarded by wmu

	v1       bool       // the session speaks v1 (LegacyHello)
	versions uint8      // versions the MOM advertised
	mode     proto.Mode // the mode the MOM was last told

	q pushQueue // the ordered push queue, started by startSession

	// What the Welcome gave the MOM (for the key rotation).
	held   []keys.KeyID
	active keys.KeyID
}

// writeTimeout bounds one write to a MOM.
const writeTimeout = 10 * time.Second

// deadlineSlack is how much earlier than its nominal time a session's
// deadline may fire: a deadline is moved only when it has come this much
// closer, not before every frame (a timer update per frame each way).
const deadlineSlack = time.Second

// armWrite makes the write deadline at least writeTimeout - deadlineSlack
// ahead, moving it to writeTimeout ahead when it is nearer. The caller
// holds wmu.
func (c *session) armWrite() error {
	now := time.Now()
	if c.wdl.Sub(now) >= writeTimeout-deadlineSlack {
		return nil
	}
	c.wdl = now.Add(writeTimeout)
	return c.conn.SetWriteDeadline(c.wdl)
}

// send writes one frame to the MOM outside the push queue.
func (c *session) send(m proto.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.armWrite(); err != nil {
		return err
	}
	return proto.WriteFrame(c.conn, m)
}

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
	pushDeny  // Deny, DenyLift or DenySet: in order with each other
	pushClose // close the connection once the frames before it are written
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
	if keyed(mc) {
		// The deny list as of now, first in the queue: every later Deny
		// or DenyLift follows it in order, whatever the rotor's DenySet
		// (sent before the queue started) missed.
		s.enqueueLocked(mc, pushItem{pushDeny, proto.Marshal(s.denySet())})
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
		mc.wmu.Lock()
		err := mc.armWrite()
		if err == nil {
			_, err = mc.conn.Write(it.frame)
		}
		mc.wmu.Unlock()
		if err != nil {
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
// waits (4 KiB), the frame's work happening in controlFrame.
func (s *Server) controlLoop(ctx context.Context, mc *session) error {
	// One read(2) brings in a heartbeat Ping whole, header and body.
	rd := bufio.NewReaderSize(mc.conn, controlReadBuffer)
	var rdl time.Time // the read deadline set
	for ctx.Err() == nil {
		s.mu.Lock()
		idle := 3*time.Duration(s.reg.attrs.Heartbeat) + 5*time.Second
		s.mu.Unlock()
		if now := time.Now(); rdl.Sub(now) < idle-deadlineSlack || rdl.Sub(now) > idle {
			rdl = now.Add(idle)
			if err := mc.conn.SetReadDeadline(rdl); err != nil {
				return err
			}
		}
		if _, err := rd.Peek(1); err != nil {
			return err
		}
		if err := s.controlFrame(mc, rd); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// controlFrameBufs are the buffers control frames are read into, shared by
// every session: a session holds one only while it handles a frame.
var controlFrameBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 256)
	return &b
}}

// controlFrame reads one frame of a v2 session from rd and handles it.
func (s *Server) controlFrame(mc *session, rd io.Reader) error {
	bp := controlFrameBufs.Get().(*[]byte)
	defer controlFrameBufs.Put(bp)
	frame, err := proto.ReadFrameLimit(rd, (*bp)[:cap(*bp)], maxControlFrame)
	if err != nil {
		return err
	}
	switch proto.Type(frame[3]) {
	case proto.TypePing:
		var res ping.Result
		mc.wmu.Lock()
		// Our own write deadline: a reply written after the deadline an
		// earlier push left had expired failed with i/o timeout and
		// closed the connection.
		err := mc.armWrite()
		if err == nil {
			err = handshake.Respond(mc.conn, frame, mc.remote, mc.local, s.sealer, s.base.Verifier, &res)
		}
		mc.wmu.Unlock()
		if err != nil {
			s.base.Record(audit.Entry{Channel: audit.ChannelControl, Outcome: audit.Rejected, Reason: ping.Reason(err),
				Peer: daemon.PeerAddrPort(mc.conn), Node: mc.node.rec.Name, Detail: "heartbeat: " + err.Error()})
			return err
		}
		s.mu.Lock()
		mc.node.lastSeen = s.cfg.Now()
		mc.node.keyID = keys.KeyID(res.KeyID)
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
// either version (NodeLookup); it reports whether msg was one of them.
func (s *Server) handleMomMessage(mc *session, msg proto.Message) bool {
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

// keyed reports whether c is a v2 control session, which carries keys (a
// legacy v1 session does not).
func keyed(c *session) bool { return c != nil && !c.v1 }
