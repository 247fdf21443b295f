package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/nacl/box"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/internal/crashhook"
	"github.com/momgate/momgate/internal/swap"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// maxControlFrame caps frames from an authenticated MOM.
const maxControlFrame = 64 << 10

// momConn is an authenticated control connection.
type momConn struct {
	conn net.Conn
	node *node
	wmu  sync.Mutex
	lg   *connLegacy // push queue and protocol of the session (legacy.go)
	// What the Welcome gave the MOM (for the key rotation).
	held   []keys.KeyID
	active keys.KeyID
}

func (c *momConn) send(m proto.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	return proto.WriteFrame(c.conn, m)
}

// rejection is a refusal with its audit reason (which gives its Reject code).
type rejection struct {
	reason reasons.Reason
	err    error
}

func (r *rejection) Error() string { return r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

func reject(reason reasons.Reason, format string, args ...any) *rejection {
	return &rejection{reason: reason, err: fmt.Errorf(format, args...)}
}

// serveConn runs the handshake, calling release when it ends, then the
// control loop.
func (s *Server) serveConn(ctx context.Context, c net.Conn, release connlimit.Release) {
	defer c.Close()
	s.gauge.control.Add(1)
	defer s.gauge.control.Add(-1)
	remote, _, err := swap.Endpoints(c)
	if err != nil {
		s.log.WithError(err).Warn("control connection without IP endpoints")
		return
	}
	peer := c.RemoteAddr().String()
	entry := audit.Entry{Channel: "control", Peer: swap.RemoteAddrPort(c)}
	mc, err := s.handshake(c, remote)
	release()
	if err != nil {
		var rj *rejection
		code, reason := proto.RejectMalformed, ping.Reason(err)
		if errors.As(err, &rj) {
			code, reason = rj.reason.Code(), rj.reason
		} else if reason == reasons.Other {
			reason = reasons.Handshake
		}
		if !errors.Is(err, io.EOF) {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_ = proto.WriteFrame(c, &proto.Reject{Code: code, Reason: err.Error()})
		}
		entry.Outcome, entry.Reason, entry.Detail = "rejected", reason, err.Error()
		if mc != nil {
			entry.Node = mc.node.rec.Name
		}
		s.audit.Record(s.stamp(entry))
		return
	}
	entry.Outcome, entry.Node = "accepted", mc.node.rec.Name
	entry.KeyID = mc.node.keyID.String()
	s.audit.Record(s.stamp(entry))
	log := s.log.WithFields(logrus.Fields{"node": mc.node.rec.Name, "peer": peer})
	log.Info("MOM connected")
	s.register(mc)
	s.rot.connected(mc)
	defer s.rot.disconnected(mc)
	defer s.unregister(mc)
	defer s.startLegacy(mc)()
	err = s.sessionLoop(ctx, mc)
	if ctx.Err() == nil && err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		log.WithError(err).Warn("MOM connection closed")
	} else {
		log.Info("MOM disconnected")
	}
}

func (s *Server) stamp(e audit.Entry) audit.Entry {
	e.Time = s.cfg.Now()
	return e
}

// handshake runs ServerHello, Enroll or Hello, Welcome and the PING swap.
func (s *Server) handshake(c net.Conn, remote proto.Addr) (*momConn, error) {
	if err := c.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout)); err != nil {
		return nil, err
	}
	var challenge [32]byte
	if _, err := io.ReadFull(s.cfg.Rand, challenge[:]); err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	s.mu.Lock()
	mode, _ := proto.ParseMode(s.reg.attrs.Mode)
	s.mu.Unlock()
	hello := &proto.ServerHello{ServerID: s.reg.id, ServerKey: s.ident.Public, Challenge: challenge,
		Mode: mode, Versions: migration.ServerVersions(mode)}
	if err := proto.WriteFrame(c, hello); err != nil {
		return nil, fmt.Errorf("send server hello: %w", err)
	}
	frame, err := proto.ReadFrameLimit(c, nil, swap.PreAuthMaxFrame)
	if err != nil {
		return nil, readRejection("read hello", err)
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		return nil, reject(reasons.Malformed, "decode hello: %w", err)
	}
	src := remote.Netip()
	if lh, ok := msg.(*proto.LegacyHello); ok {
		return s.legacyHello(c, lh, src, mode)
	}
	if mode == proto.ModeLegacy {
		return nil, s.refuseV2InLegacy(src)
	}
	var n *node
	var claims []uint32 // keys a returning MOM says it holds
	enrolling := false
	switch m := msg.(type) {
	case *proto.Enroll:
		n, err = s.enroll(m, src, &challenge)
		enrolling = true
	case *proto.Hello:
		n, claims, err = s.authenticate(m, src, &challenge)
	default:
		err = reject(reasons.Malformed, "expected Enroll or Hello, got %s", msg.Type())
	}
	if err != nil {
		return nil, err
	}
	mc := &momConn{conn: c, node: n, lg: &connLegacy{mode: mode}}
	welcome, err := s.welcome(mc, claims, enrolling)
	if err != nil {
		return mc, err
	}
	if err := proto.WriteFrame(c, welcome); err != nil {
		return mc, fmt.Errorf("send welcome: %w", err)
	}
	// The swap: the MOM proves it holds a current cluster key.
	frame, err = proto.ReadFrameLimit(c, nil, swap.PreAuthMaxFrame)
	if err != nil {
		return mc, readRejection("read ping", err)
	}
	var res ping.Result
	if err := swap.Respond(c, frame, s.sealer, s.verifier, &res); err != nil {
		return mc, err
	}
	if res.Node != n.id {
		return mc, reject(reasons.NodeMismatch, "ping names node %x, connection is %s", res.Node, n.rec.Name)
	}
	s.mu.Lock()
	n.keyID = keys.KeyID(res.KeyID)
	n.protocol = "v2"
	s.mu.Unlock()
	return mc, c.SetDeadline(time.Time{})
}

// enroll redeems a token for a new MOM identity.
func (s *Server) enroll(m *proto.Enroll, src netip.Addr, challenge *[32]byte) (*node, error) {
	plain, ok := box.Open(nil, m.Sealed, &m.Nonce, &m.NodeKey, &s.ident.Private)
	if !ok {
		return nil, reject(reasons.Auth, "enroll proof does not open under the server key")
	}
	proof, err := proto.DecodeEnrollProof(plain)
	if err != nil {
		return nil, reject(reasons.Malformed, "enroll proof: %w", err)
	}
	if subtle.ConstantTimeCompare(proof.Challenge[:], challenge[:]) != 1 {
		return nil, reject(reasons.Auth, "enroll proof answers another challenge")
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.reg.tokens.Lookup(m.TokenID)
	if err != nil {
		return nil, tokenRejection(err)
	}
	n := s.reg.byName[rec.Node]
	if n == nil {
		return nil, reject(reasons.UnknownNode, "token is for node %s, which no longer exists", rec.Node)
	}
	if n.addr != src {
		return nil, reject(reasons.AddrMismatch, "token for node %s (%s) used from %s", n.rec.Name, n.addr, src)
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
		return nil, reject(reasons.AlreadyEnrolled, "node %s is already enrolled with another identity", n.rec.Name)
	}
	if _, err := s.reg.tokens.Redeem(m.TokenID, proof.Secret, now); err != nil {
		return nil, tokenRejection(err)
	}
	oldRec := n.rec
	n.setPub(m.NodeKey)
	t := now.UTC()
	n.rec.Enrolled = &t
	if err := s.persistNodesLocked(n, m.TokenID); err != nil {
		n.rec, n.pub, n.hasPub = oldRec, [32]byte{}, false
		s.reg.tokens.Unredeem(m.TokenID)
		return nil, reject(reasons.Internal, "persist enrollment: %w", err)
	}
	s.log.WithFields(logrus.Fields{"node": n.rec.Name, "fingerprint": keys.ShortFingerprint(n.pub)}).Info("node enrolled")
	crashhook.At("enroll-saved") // test-only: enrollment on disk, Welcome not sent
	n.versions = proof.Versions
	return n, nil
}

func tokenRejection(err error) *rejection {
	switch {
	case errors.Is(err, keys.ErrTokenUsed):
		return reject(reasons.TokenUsed, "enrollment token already used")
	case errors.Is(err, keys.ErrTokenExpired):
		return reject(reasons.TokenExpired, "enrollment token expired")
	case errors.Is(err, keys.ErrTokenSecret):
		return reject(reasons.TokenSecret, "enrollment token secret does not match")
	default:
		return reject(reasons.TokenUnknown, "unknown enrollment token")
	}
}

// authenticate checks a returning MOM's proof of identity; it returns the
// key ids the MOM says it holds.
func (s *Server) authenticate(m *proto.Hello, src netip.Addr, challenge *[32]byte) (*node, []uint32, error) {
	s.mu.Lock()
	n := s.reg.byID[m.NodeID]
	var pub [32]byte
	var addr netip.Addr
	enrolled := false
	if n != nil {
		pub, addr, enrolled = n.pub, n.addr, n.enrolled()
	}
	s.mu.Unlock()
	if n == nil && s.deny.Revoked(m.NodeID, proto.Addr{}) {
		return nil, nil, reject(reasons.Revoked, "node %x was deleted and is revoked", m.NodeID)
	}
	if n == nil || !enrolled {
		return nil, nil, reject(reasons.UnknownNode, "no enrolled node with id %x", m.NodeID)
	}
	if addr != src {
		return n, nil, reject(reasons.AddrMismatch, "node %s is at %s, connection from %s", n.rec.Name, addr, src)
	}
	if s.deny.Revoked(m.NodeID, proto.AddrFrom(src)) {
		return n, nil, reject(reasons.Revoked, "node %s is revoked", n.rec.Name)
	}
	plain, ok := box.Open(nil, m.Sealed, &m.Nonce, &pub, &s.ident.Private)
	if !ok {
		return n, nil, reject(reasons.Auth, "hello proof of node %s does not open with its identity key", n.rec.Name)
	}
	proof, err := proto.DecodeHelloProof(plain)
	if err != nil {
		return n, nil, reject(reasons.Malformed, "hello proof: %w", err)
	}
	if subtle.ConstantTimeCompare(proof.Challenge[:], challenge[:]) != 1 {
		return n, nil, reject(reasons.Auth, "hello proof answers another challenge (replayed hello)")
	}
	s.setVersions(n, proof.Versions)
	return n, proof.KeyIDs, nil
}

// welcome wraps for the MOM every cluster key it should hold and records
// them in mc. With key_distribution=manual a returning MOM gets only the
// keys it says it holds (their current states, no new secret); if that
// leaves it without the active key it is refused with instructions.
func (s *Server) welcome(mc *momConn, claims []uint32, enrolling bool) (*proto.Welcome, error) {
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
			return nil, reject(reasons.Internal, "wrap keys: %w", err)
		}
		w.Keys = append(w.Keys, toProtoWrapped(wk))
		mc.held = append(mc.held, k.ID)
		if k.State == keys.StateActive {
			mc.active = k.ID
		}
	}
	if mc.active == 0 {
		return nil, reject(reasons.KeyMismatch,
			"key_distribution is manual and node %s does not hold the active cluster key %s: install it with `momgate-mom key import`, then restart the MOM",
			name, ring.Active().ID)
	}
	return w, nil
}

func toProtoWrapped(w keys.WrappedKey) proto.WrappedKey {
	return proto.WrappedKey{KeyID: uint32(w.ID), State: uint8(w.State), Nonce: w.Nonce, Sealed: w.Sealed}
}

func (s *Server) register(mc *momConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.conns[mc.node.id]; old != nil {
		old.conn.Close() // the MOM reconnected; the old connection is dead
	}
	s.conns[mc.node.id] = mc
	mc.node.up = true
	mc.node.lastSeen = s.cfg.Now()
}

func (s *Server) unregister(mc *momConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[mc.node.id] == mc {
		delete(s.conns, mc.node.id)
		mc.node.up = false
	}
}

// controlLoop serves heartbeats and acknowledgements until the connection
// ends. Three missed heartbeats close it.
func (s *Server) controlLoop(ctx context.Context, mc *momConn) error {
	var res ping.Result
	buf := make([]byte, 0, ping.ReplyFrameSize) // ReadFrameLimit grows it for larger frames
	for ctx.Err() == nil {
		s.mu.Lock()
		idle := 3*time.Duration(s.reg.attrs.Heartbeat) + 5*time.Second
		s.mu.Unlock()
		if err := mc.conn.SetReadDeadline(time.Now().Add(idle)); err != nil {
			return err
		}
		frame, err := proto.ReadFrameLimit(mc.conn, buf[:cap(buf)], maxControlFrame)
		if err != nil {
			return err
		}
		switch proto.Type(frame[3]) {
		case proto.TypePing:
			mc.wmu.Lock()
			// Our own write deadline: send and the legacy pusher leave theirs
			// (10 s) on the connection, and a reply after it expired failed
			// with i/o timeout and closed the connection.
			err := mc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err == nil {
				err = swap.Respond(mc.conn, frame, s.sealer, s.verifier, &res)
			}
			mc.wmu.Unlock()
			if err != nil {
				s.audit.Record(s.stamp(audit.Entry{Channel: "control", Outcome: "rejected", Reason: ping.Reason(err),
					Peer: swap.RemoteAddrPort(mc.conn), Node: mc.node.rec.Name, Detail: "heartbeat: " + err.Error()}))
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
				continue
			}
			if s.handleMomMessage(mc, msg) {
				continue
			}
			s.log.WithFields(logrus.Fields{"node": mc.node.rec.Name, "type": msg.Type().String()}).Debug("ignored control message")
		}
	}
	return ctx.Err()
}
