package server

// The legacy protocol (v1, docs/PROTOCOL.md 4.3): a MOM known by its
// source address, as OpenPBS knows its MOMs; no PING, no key.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// legacyHello registers a MOM that speaks v1: it is known by its source
// address, as OpenPBS knows its MOMs. No PING, no key.
func (s *Server) legacyHello(c net.Conn, m *proto.LegacyHello, src netip.Addr, mode proto.Mode) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.reg.byAddr(src)
	if n == nil {
		return nil, handshake.Refuse(reasons.UnknownNode, "no node has address %s", src)
	}
	mc := &session{conn: c, node: n}
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
	if n.rec.Sealed && mode != proto.ModeLegacy {
		// It proved it speaks sealed sessions and this mode accepts them:
		// a v1 session, which nothing authenticates, is a downgrade.
		return mc, handshake.Refuse(reasons.SessionDowngrade,
			"node %s speaks sealed sessions: a legacy (v1) session from it is refused in %s mode; roll it back with set node %s sealed=false",
			n.rec.Name, mode, n.rec.Name)
	}
	n.versions = m.Versions
	n.protocol = "v1"
	s.lg.v1Accepted.Add(1)
	mc.v1, mc.versions, mc.mode = true, m.Versions, mode
	return mc, nil
}

// legacyLoop serves a v1 session: there are no heartbeats (TCP keepalive
// finds a dead peer); the MOM may look nodes up.
func (s *Server) legacyLoop(ctx context.Context, mc *session) error {
	for ctx.Err() == nil {
		if err := mc.conn.SetReadDeadline(time.Time{}); err != nil {
			return err
		}
		frame, err := mc.link.ReadFrame()
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
