package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// A control connection from accept to the admission decision: serveControl
// accepts it, admit applies the per-source limits and runs the handshake's
// server half (handshake.Serve), which asks the registry through admission
// in protocol order; admit audits the outcome, and serveSession serves the
// session it admitted (session.go).

// serveControl accepts MOM control connections on ln until ctx ends, then
// closes them and waits for them.
func (s *Server) serveControl(ctx context.Context, ln net.Listener) {
	s.base.TrackConns(ctx, ln, &s.gauge.control).Serve(func(c net.Conn) func() {
		mc, ok := s.admit(c)
		if !ok {
			return nil
		}
		// The session on a goroutine of its own (daemon.Conns.Serve):
		// idle, it keeps the small stack of its read loop, not the one the
		// handshake (enrollment, key wrapping, the journal) grew.
		return func() { s.serveSession(ctx, c, mc) }
	})
}

// serveSession serves an admitted control connection's session until it
// ends.
func (s *Server) serveSession(ctx context.Context, c net.Conn, mc *session) {
	if err := daemon.EnableKeepAlive(c); err != nil {
		s.log.WithError(err).Debug("control connection")
	}
	// The session's log fields are made when a line is written: kept for
	// the session's life they cost 400 bytes per connected node.
	log := func() *logrus.Entry {
		return s.log.WithFields(logrus.Fields{"node": mc.node.rec.Name, "peer": c.RemoteAddr().String()})
	}
	log().Info("MOM connected")
	s.register(mc)
	defer mc.link.Close()
	s.startTicker(mc)
	s.rot.connected(mc)
	defer s.rot.disconnected(mc)
	defer s.unregister(mc)
	defer s.startSession(mc)()
	err := s.sessionLoop(ctx, mc)
	if ctx.Err() == nil && err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		log().WithError(err).Warn("MOM connection closed")
	} else {
		log().Info("MOM disconnected")
	}
}

// admit is the one place a control connection is admitted or refused:
// the per-source limits, then the handshake within its deadline
// (admitControl). It writes the audit line and answers a refusal; the
// limiter's slot is released once the handshake has ended.
func (s *Server) admit(c net.Conn) (*session, bool) {
	remote, local, err := daemon.Endpoints(c)
	if err != nil {
		s.log.WithError(err).Warn("control connection without IP endpoints")
		return nil, false
	}
	peer := netip.AddrPortFrom(remote.Netip(), daemon.PeerAddrPort(c).Port())
	var slot connlimit.Slot
	if !s.base.AdmitSource(c, peer, audit.ChannelControl, &slot) {
		return nil, false
	}
	entry := audit.Entry{Channel: audit.ChannelControl, Peer: peer}
	mc, named, err := s.admitControl(c, remote, local)
	slot.Release()
	entry.Node, entry.NodeID = named.name, named.idText()
	if err != nil {
		rj := handshake.RejectionOf(err)
		s.countRefusal(rj.Reason)
		if rj.Answer != nil {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_ = proto.WriteFrame(c, rj.Answer)
		}
		entry.Outcome, entry.Reason, entry.Detail = audit.Rejected, rj.Reason, err.Error()
		if mc != nil {
			entry.Node = mc.node.rec.Name
		}
		s.base.Record(entry)
		return nil, false
	}
	entry.Outcome, entry.Node = audit.Accepted, mc.node.rec.Name
	entry.Key = mc.node.keyID
	s.base.Record(entry)
	return mc, true
}

// admitControl runs the server half of the handshake (handshake.Serve)
// within the handshake deadline. The session is returned, with the error,
// once its node is known, and the node the hello or token named as far
// as the server knows it (a deleted node too), so that the audit line
// names it.
func (s *Server) admitControl(c net.Conn, remote, local proto.Addr) (*session, namedNode, error) {
	if err := c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout)); err != nil {
		return nil, namedNode{}, err
	}
	adm := &admission{s: s, conn: c}
	a, err := handshake.Serve(c, remote, local, s.hs, adm)
	if adm.node != nil {
		adm.named = namedNode{adm.node.rec.Name, adm.node.id}
	}
	if err != nil {
		return adm.mc, adm.named, err
	}
	adm.mc.remote, adm.mc.local = remote, local
	// The link reads through a small buffer: one read(2) per heartbeat.
	// Nothing past the handshake was read from c yet.
	adm.mc.rd = bufio.NewReaderSize(c, controlReadBuffer)
	adm.mc.link = daemon.NewLink(c, a.Session, daemon.LinkConfig{Channel: audit.ChannelControl,
		Limit: maxControlFrame, WriteTimeout: controlWriteTimeout, Stats: s.sessions, Reader: adm.mc.rd})
	adm.mc.floorProbe = a.FloorProbe && a.Session != nil
	if a.Version == proto.V2 {
		s.mu.Lock()
		adm.mc.node.keyID = keys.KeyID(a.KeyID)
		adm.mc.node.protocol = "v2"
		adm.mc.recordStamp(a.Timestamp, s.cfg.Now())
		s.mu.Unlock()
	}
	return adm.mc, adm.named, c.SetDeadline(time.Time{})
}

// namedNode is the node a connection named, for its audit line; zero
// when none is known.
type namedNode struct {
	name string
	id   proto.NodeID
}

// idText is the node id as the audit log writes it, "" if none.
func (n namedNode) idText() string {
	if n.id == (proto.NodeID{}) {
		return ""
	}
	return uuid.UUID(n.id).String()
}

// admission is one control connection's view of the registry during its
// handshake (handshake.Registry).
type admission struct {
	s     *Server
	conn  net.Conn
	mode  proto.Mode // given in ServerHello
	node  *node      // the node the hello named
	named namedNode  // the node the hello or token named, deleted ones too
	mc    *session   // the session, once it exists
	// helloPub is the identity key NodeKey gave for the node a Hello names.
	helloPub [32]byte
}

// maxHandshakesPastHello bounds the control handshakes doing their
// public-key work at once (handshake.HelloGate). A failover or a restart
// brings every MOM back within seconds: unbounded, 10,000 handshakes share
// the CPU at once, each finishes late, and a group leader starved of CPU
// misses its raft lease, steps down and closes every session, so the storm
// starts again at the next leader (measured: 7 elections, 77 s to bring
// 10,000 MOMs back). A connection waits for its slot before the work, not
// while holding one; the handshake's own deadline starts once it has it.
const maxHandshakesPastHello = 64

// AfterHello takes a handshake slot (handshake.HelloGate), waiting at
// most the handshake timeout, and gives the handshake its whole timeout
// from then on.
func (a *admission) AfterHello() (func(), *handshake.Rejection) {
	slots := a.s.hsSlots
	select {
	case slots <- struct{}{}:
	default:
		t := time.NewTimer(a.s.cfg.HandshakeTimeout)
		defer t.Stop()
		select {
		case slots <- struct{}{}:
		case <-t.C:
			return nil, handshake.Refuse(reasons.HandshakeTimeout, "server busy: no handshake slot within %s (%d handshakes under way)",
				a.s.cfg.HandshakeTimeout, cap(slots))
		}
		if err := a.conn.SetDeadline(time.Now().Add(a.s.cfg.HandshakeTimeout)); err != nil {
			<-slots
			return nil, handshake.Refuse(reasons.Closed, "set handshake deadline: %v", err)
		}
	}
	return func() { <-slots }, nil
}

// Mode is the server's mode now.
func (a *admission) Mode() proto.Mode {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	a.mode = a.s.modeLocked()
	return a.mode
}

// LegacyHello admits or refuses a v1 session.
func (a *admission) LegacyHello(h *proto.LegacyHello, src netip.Addr, mode proto.Mode) error {
	mc, err := a.s.legacyHello(a.conn, h, src, mode)
	a.mc = mc
	return err
}

// Enroll redeems the Enroll's token.
func (a *admission) Enroll(e *proto.Enroll, proof *proto.EnrollProof, src netip.Addr) error {
	n, err := a.s.enroll(e, proof, src)
	a.node = n
	return err
}

// NodeKey finds the node a Hello names.
func (a *admission) NodeKey(id proto.NodeID, src netip.Addr) ([32]byte, string, error) {
	n, pub, name, err := a.s.helloNode(id, src)
	a.named = namedNode{name, id}
	if err != nil {
		return pub, "", err
	}
	a.node, a.helloPub = n, pub
	return pub, n.rec.Name, nil
}

// OpenHello opens the Hello proof of the node NodeKey named with the
// node's cached shared key (handshake.HelloOpener), which the Welcome's
// key wrapping uses next.
func (a *admission) OpenHello(sealed []byte, nonce *[24]byte) ([]byte, bool) {
	return a.s.rot.wrapper(a.node.id, &a.helloPub).OpenFromNode(sealed, nonce)
}

// Hello records the versions a returning MOM advertised.
func (a *admission) Hello(proof *proto.HelloProof) { a.s.setVersions(a.node, proof.Versions) }

// Sessions refuses an unsealed session from a node known to speak sealed
// sessions and gives the im_security for the Welcome (sealed.go).
func (a *admission) Sessions(speaks bool) (uint8, error) { return a.s.sessionPolicy(a.node, speaks) }

// Welcome wraps the node's keys into its Welcome.
func (a *admission) Welcome(enrolling bool, claims []uint32) (*proto.Welcome, error) {
	a.mc = &session{conn: a.conn, node: a.node, mode: a.mode}
	return a.s.welcome(a.mc, claims, enrolling)
}

// enroll redeems a token for a new MOM identity; the handshake has checked
// the proof.
func (s *Server) enroll(m *proto.Enroll, proof *proto.EnrollProof, src netip.Addr) (*node, error) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.reg.tokens.Lookup(m.TokenID)
	if err != nil {
		return nil, tokenRejection(err)
	}
	n := s.reg.byName[rec.Node]
	if n == nil {
		return nil, handshake.Refuse(reasons.UnknownNode, "token is for node %s, which no longer exists", rec.Node)
	}
	if n.addr != src {
		return nil, handshake.Refuse(reasons.AddrMismatch, "token for node %s (%s) used from %s", n.rec.Name, n.addr, src)
	}
	if rec.Used {
		// A retry after a lost Welcome: same token, same identity.
		if n.enrolled() && n.pub == m.NodeKey {
			if err := s.reg.tokens.Check(m.TokenID, proof.Secret); err != nil {
				return nil, tokenRejection(err)
			}
			n.versions = proof.Versions
			return n, nil
		}
		return nil, tokenRejection(keys.ErrTokenUsed)
	}
	if n.enrolled() {
		return nil, handshake.Refuse(reasons.AlreadyEnrolled, "node %s is already enrolled with another identity", n.rec.Name)
	}
	if _, err := s.reg.tokens.Redeem(m.TokenID, proof.Secret, now); err != nil {
		return nil, tokenRejection(err)
	}
	oldRec := n.rec
	n.setPub(m.NodeKey)
	t := now.UTC()
	n.rec.Enrolled = &t
	// A MOM that speaks PING only is marked upgraded with its enrollment,
	// in the same journal write (its first session would mark it with a
	// second one, an fsync under the registry lock per enrolling node).
	upgraded := migration.Upgrades(proof.Versions) && !n.rec.Upgraded
	if upgraded {
		n.rec.Upgraded = true
	}
	if err := s.persistNodesLocked(n, m.TokenID); err != nil {
		n.rec, n.pub, n.hasPub = oldRec, [32]byte{}, false
		s.reg.tokens.Unredeem(m.TokenID)
		return nil, handshake.Refuse(reasons.Internal, "persist enrollment: %w", err)
	}
	s.log.WithFields(logrus.Fields{"node": n.rec.Name, "fingerprint": keys.FingerprintText(n.pub)}).Info("node enrolled")
	if upgraded {
		s.log.WithField("node", n.rec.Name).Info("node upgraded: it speaks PING only; legacy admission of it refused from now on")
		s.pushUpgradedLocked(proto.UpgradedAdd, n)
	}
	s.cfg.CrashAt("enroll-saved") // test-only: enrollment on disk, Welcome not sent
	n.versions = proof.Versions
	return n, nil
}

func tokenRejection(err error) *handshake.Rejection {
	switch {
	case errors.Is(err, keys.ErrTokenUsed):
		return handshake.Refuse(reasons.TokenUsed, "enrollment token already used")
	case errors.Is(err, keys.ErrTokenExpired):
		return handshake.Refuse(reasons.TokenExpired, "enrollment token expired")
	case errors.Is(err, keys.ErrTokenSecret):
		return handshake.Refuse(reasons.TokenSecret, "enrollment token secret does not match")
	default:
		return handshake.Refuse(reasons.TokenUnknown, "unknown enrollment token")
	}
}

// helloNode finds the enrolled node a Hello from src names and its
// identity key, refusing an unknown, readdressed or revoked node; the
// handshake checks the proof with the key. name is the node's name as far
// as the server knows it, a deleted node's too. A deleted node is refused
// as revoked for as long as the server remembers it (deleted.go), so its
// MOM stops retrying.
func (s *Server) helloNode(id proto.NodeID, src netip.Addr) (n *node, pub [32]byte, name string, err error) {
	s.mu.Lock()
	n = s.reg.byID[id]
	var addr netip.Addr
	enrolled := false
	if n != nil {
		pub, addr, enrolled, name = n.pub, n.addr, n.enrolled(), n.rec.Name
	}
	gone, wasDeleted := s.deleted.lookup(id)
	s.mu.Unlock()
	if n == nil && wasDeleted {
		return nil, pub, gone.Name, handshake.Refuse(reasons.Revoked, "node %s (id %s) was deleted and is revoked (delete node at %s)",
			gone.Name, uuid.UUID(id), gone.At.Format(time.RFC3339))
	}
	if n == nil && s.deny.Revoked(id, proto.Addr{}) {
		return nil, pub, "", handshake.Refuse(reasons.Revoked, "node %s was deleted and is revoked", uuid.UUID(id))
	}
	if n != nil && wasDeleted {
		// An incomplete delete node: refused as revoked whether or not its
		// deny entry is still there.
		return nil, pub, name, handshake.Refuse(reasons.Revoked, "node %s is revoked: its delete node at %s did not complete (run delete node %s again)",
			name, gone.At.Format(time.RFC3339), name)
	}
	if n == nil || !enrolled {
		return nil, pub, name, handshake.Refuse(reasons.UnknownNode, "no enrolled node with id %s", uuid.UUID(id))
	}
	if addr != src {
		return nil, pub, name, handshake.Refuse(reasons.AddrMismatch, "node %s is at %s, connection from %s", n.rec.Name, addr, src)
	}
	if s.deny.Revoked(id, proto.AddrFrom(src)) {
		return nil, pub, name, handshake.Refuse(reasons.Revoked, "node %s is revoked", n.rec.Name)
	}
	return n, pub, name, nil
}

// setVersions records the versions a MOM advertised in its hello proof.
func (s *Server) setVersions(n *node, versions uint8) {
	s.mu.Lock()
	n.versions = versions
	s.mu.Unlock()
}

// welcome wraps for the MOM every cluster key it should hold and records
// them in mc. With key_distribution=manual a returning MOM gets only the
// keys it says it holds (their current states, no new secret); if that
// leaves it without the active key it is refused with instructions.
func (s *Server) welcome(mc *session, claims []uint32, enrolling bool) (*proto.Welcome, error) {
	n := mc.node
	s.mu.Lock()
	mode, _ := proto.ParseMode(s.reg.attrs.Mode)
	manual := s.reg.attrs.KeyDistribution == "manual"
	name, id, pub := n.rec.Name, n.id, n.pub
	s.mu.Unlock()
	claimed := func(k keys.KeyID) bool {
		for _, c := range claims {
			if keys.KeyID(c) == k {
				return true
			}
		}
		return false
	}
	w := &proto.Welcome{NodeID: id, Name: name, Mode: mode}
	ring := s.ring.Load()
	wr := s.rot.wrapper(id, &pub)
	for _, k := range ring.Keys() {
		if manual && !enrolling && !claimed(k.ID) {
			continue
		}
		wk, err := wr.Wrap(s.cfg.Rand, k, k.State)
		if err != nil {
			return nil, handshake.Refuse(reasons.Internal, "wrap keys: %w", err)
		}
		w.Keys = append(w.Keys, handshake.ToWire(wk))
		mc.held = append(mc.held, k.ID)
		if k.State == keys.StateActive {
			mc.active = k.ID
		}
	}
	if mc.active == 0 {
		return nil, handshake.Refuse(reasons.KeyMismatch,
			"key_distribution is manual and node %s does not hold the active cluster key %s: install it with `momgate-mom key import`, then restart the MOM",
			name, ring.Active().ID)
	}
	return w, nil
}
