package mom

import (
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

// admit is the one place an inbound IM connection is admitted or refused.
// It applies the per-source limits, reads the first frame within the
// handshake deadline (handshake.ReadFirstFrame) and lets handshake.AdmitIM
// decide (the migration's version decision, then for a Ping the swap),
// each a call down that returns; the limiter's slot is
// released as soon as the decision is made. It writes the audit line,
// answers a refusal, and records an admitted sister. It reports whether
// x's connection is admitted, v1 and v2 alike. The connection's addresses
// are read once, its first frame goes through x's buffer, and the audit
// entry's ids are formatted only if its line is written.
func (m *Mom) admit(x *imConn) (handshake.IMAdmission, bool) {
	c := x.c
	remote, local, err := daemon.Endpoints(c)
	if err != nil {
		return handshake.IMAdmission{}, false
	}
	peer := netip.AddrPortFrom(remote.Netip(), daemon.PeerAddrPort(c).Port())
	if !m.base.AdmitSource(c, peer, audit.ChannelIM, &x.slot) {
		return handshake.IMAdmission{}, false
	}
	entry := audit.Entry{Channel: audit.ChannelIM, Peer: peer}
	var adm handshake.IMAdmission
	var frame []byte
	if err = c.SetDeadline(time.Now().Add(m.cfg.HandshakeTimeout)); err != nil {
		err = &handshake.Rejection{Reason: handshake.ReadFailureReason(err), Err: err}
	} else if frame, err = handshake.ReadFirstFrameInto(x, x.firstFrameBuf()); err == nil {
		// What the MOM knows now that the frame has come decides.
		r := handshake.IMResponder{Sealer: m.currentSealer(), Verifier: m.base.Verifier}
		if m.speaksSessions() {
			r.Sessions = &handshake.IMSessions{SessionParams: handshake.SessionParams{Now: time.Now, Limits: m.cfg.SessionLimits},
				Min: m.imMin(), Marks: m.sess.marks, Ephemerals: m.sess.eph}
		}
		adm, err = handshake.AdmitIM(x, frame, remote, local, m.inbound(remote), r)
	}
	x.slot.Release()
	if adm.Keyed {
		entry.Key = keys.KeyID(adm.KeyID)
	}
	if err != nil {
		rj := handshake.RejectionOf(err)
		if rj.Answer != nil {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_ = proto.WriteFrame(c, rj.Answer)
		}
		entry.Outcome, entry.Reason, entry.Detail = audit.Rejected, rj.Reason, err.Error()
		// The node id is known once the PING opened under the cluster
		// key, so it is a member's (or a deleted member's) id.
		entry.Node, entry.ID = m.nodeNameOf(adm.Node), uuid.UUID(adm.Node)
		m.base.Record(entry)
		return adm, false
	}
	entry.Outcome = audit.Accepted
	if adm.Version == proto.V1 {
		entry.Detail = "v1: address on the cluster list"
	} else {
		entry.Node, entry.ID = m.nodeNameOf(adm.Node), uuid.UUID(adm.Node)
		entry.Detail = sessionDetail(adm)
	}
	m.base.Record(entry)
	m.admitted.Add(1)
	if adm.Version == proto.V1 {
		m.lg.v1Admitted.Add(1)
		m.peers.admitLegacy(remote, "in", m.cfg.Now())
	} else {
		m.peers.admit(adm.Sender, adm.Node, entry.Node, entry.Key, "in", adm.Timestamp, m.cfg.Now())
	}
	_ = c.SetDeadline(time.Time{})
	return adm, true
}

// inbound is what the admission decision needs to know of an IM
// connection from remote (migration.Inbound; AdmitIM fills in the
// version of the first frame).
func (m *Mom) inbound(remote proto.Addr) migration.Inbound {
	m.lg.mu.Lock()
	in := migration.Inbound{Protocol: m.effectiveLocked(), OnList: m.lg.list.Contains(remote.Netip()),
		Upgraded: m.lg.held || m.lg.upgraded.Contains(remote)}
	m.lg.mu.Unlock()
	in.Revoked = m.v1Revoked(remote)
	return in
}

// sessionDetail is the audit detail of an admitted v2 connection: what it
// runs, the session's protection or "none" for a plain swap or an
// agreement on none. The plain cases are constants: nothing is built per
// admission.
func sessionDetail(adm handshake.IMAdmission) string {
	switch {
	case adm.Session != nil && adm.Session.Protection() == session.Encrypt:
		return "session encrypt"
	case adm.Session != nil && adm.Session.Protection() == session.Auth:
		return "session auth"
	case adm.Session != nil:
		return "session " + adm.Session.Protection().String()
	case adm.SessionSwap:
		return "session none (agreed)"
	}
	return "session none (plain PING swap)"
}
