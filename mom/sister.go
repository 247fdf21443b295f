package mom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
	"github.com/momgate/momgate/session"
)

// Outbound IM: a PING swap with a sister (PingSister), an admitted
// connection to one in the best version both ends allow (openIM, with the
// fallback of docs/PROTOCOL.md 4.5), and the requests a mother superior
// sends on it.

// PingSister opens an IM connection to addr and runs the swap: a session
// swap when this MOM speaks sealed sessions (docs/PROTOCOL.md 6.7), which
// falls back to a plain PING swap, on a new connection, only when the
// sister refuses it as an unknown frame and is not known to speak sealed
// sessions (that refusal is not authenticated). On success the admitted
// connection is returned, registered (the caller drops it).
func (m *Mom) PingSister(ctx context.Context, addr string) (*admin.PingResult, *imLink) {
	out := &admin.PingResult{Addr: addr}
	sealer := m.currentSealer()
	if sealer == nil {
		out.Reason, out.Error = reasons.NotEnrolled, "this MOM has not enrolled yet"
		return out, nil
	}
	start := time.Now()
	c, err := m.dial(ctx, addr)
	if err != nil {
		out.Reason, out.Error = reasons.Connect, err.Error()
		return out, nil
	}
	var res ping.Result
	var s *session.Session
	swapped := m.speaksSessions()
	if swapped {
		s, err = m.sessionSwap(c, sealer, &res)
		if fallback, why := m.mayFallback(c, err); why != nil {
			err = why
		} else if fallback {
			c.Close()
			swapped, res = false, ping.Result{}
			if c, err = m.dial(ctx, addr); err != nil {
				out.Reason, out.Error = reasons.Connect, err.Error()
				return out, nil
			}
			err = daemon.InitiateSwap(c, sealer, m.base.Verifier, time.Now().Add(m.cfg.HandshakeTimeout), &res)
		}
	} else {
		err = daemon.InitiateSwap(c, sealer, m.base.Verifier, time.Now().Add(m.cfg.HandshakeTimeout), &res)
	}
	out.RTTMilli = float64(time.Since(start).Microseconds()) / 1000
	entry := audit.Entry{Channel: audit.ChannelIM, Peer: daemon.PeerAddrPort(c)}
	if res.KeyID != 0 {
		out.KeyID = keys.KeyID(res.KeyID).String()
	}
	if err != nil {
		c.Close()
		out.Error = err.Error()
		var rj *handshake.RejectError
		if errors.As(err, &rj) {
			out.Reason, out.Code = reasons.RefusedByPeer, rj.Code
		} else {
			out.Reason = session.Reason(err)
		}
		entry.Outcome, entry.Reason, entry.Detail = audit.Rejected, out.Reason, "outbound: "+err.Error()
		m.base.Record(entry)
		return out, nil
	}
	out.Admitted = true
	out.NodeID, out.Name = nodeIDText(res.Node), m.nodeNameOf(res.Node)
	out.Session = session.None.String()
	if s != nil {
		out.Session = s.Protection().String()
	}
	entry.Outcome, entry.Node, entry.NodeID, entry.KeyID, entry.Detail = audit.Accepted, out.Name, out.NodeID, out.KeyID, "outbound, session "+out.Session
	m.base.Record(entry)
	m.admittedOut.Add(1)
	m.peers.admit(res.Sender, res.Node, out.Name, keys.KeyID(res.KeyID), "out", res.Timestamp, m.cfg.Now())
	if swapped && s == nil {
		m.markPeer(res.Node, res.Sender) // none by authenticated agreement: it speaks sessions
	}
	l := m.newIMLink(&imLink{link: daemon.NewLink(c, s, daemon.LinkConfig{Channel: audit.ChannelIM, Limit: maxIMFrame,
		WriteTimeout: imWriteTimeout, Stats: m.sstats}),
		ver: proto.V2, node: res.Node, addr: res.Sender, keyID: res.KeyID, dir: "out", session: swapped})
	return out, l
}

// sessionSwap runs the initiator's session swap on c within the handshake
// deadline, offering at least the cluster's im_security.
func (m *Mom) sessionSwap(c net.Conn, sealer *ping.Sealer, res *ping.Result) (*session.Session, error) {
	remote, local, err := daemon.Endpoints(c)
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(time.Now().Add(m.cfg.HandshakeTimeout)); err != nil {
		return nil, err
	}
	defer c.SetDeadline(time.Time{})
	cfg := session.Config{Channel: session.ChannelIM, Min: m.imMin(), Rand: m.cfg.Rand, Limits: m.cfg.SessionLimits}
	return handshake.InitiateSession(c, remote, local, sealer, m.base.Verifier, cfg, time.Now, res)
}

// mayFallback decides on a refused SessionPing: a sister that does not
// speak sealed sessions answers it with Reject code 1 (an unknown frame)
// or closes; the initiator then retries with a plain Ping, unless the
// sister is known to speak them, when the refusal, which is not
// authenticated, is refused as a downgrade (why).
func (m *Mom) mayFallback(c net.Conn, err error) (fallback bool, why error) {
	var rj *handshake.RejectError
	unknown := (errors.As(err, &rj) && rj.Code == proto.RejectMalformed) || (err != nil && errors.Is(err, io.EOF))
	if !unknown {
		return false, nil
	}
	remote, _, _ := daemon.Endpoints(c)
	if m.sess.held.Load() {
		return false, fmt.Errorf("%s refused the session swap (%v), and the sealed-session state is held after its loss: no fallback to an unsealed swap until the server's set of sealed nodes has arrived: %w",
			remote, err, session.ErrDowngrade)
	}
	if !m.sess.marks.MayFallback(remote) {
		return false, fmt.Errorf("%s refused the session swap (%v), but it speaks sealed sessions: no fallback to an unsealed swap: %w",
			remote, err, session.ErrDowngrade)
	}
	return true, nil
}

// openIM opens an admitted IM connection to a sister: the highest version
// both ends allow, PING first when this MOM may, falling back to v1 only
// per migration.MayFallback. A v1 connection is admitted (or refused) by
// the sister on its first IM frame.
func (m *Mom) openIM(ctx context.Context, addr netip.AddrPort) (*imLink, error) {
	m.lg.mu.Lock()
	p := m.effectiveLocked()
	peerUpgraded := m.lg.upgraded.Contains(proto.AddrFrom(addr.Addr()))
	m.lg.mu.Unlock()
	attempts := migration.Attempts(p, m.currentSealer() != nil)
	if len(attempts) == 0 {
		return nil, fmt.Errorf("this MOM speaks %s but holds no cluster key yet", p)
	}
	var last error
	for _, v := range attempts {
		if v == proto.V1 {
			c, err := m.dial(ctx, addr.String())
			if err != nil {
				return nil, fmt.Errorf("connect to %s: %w", addr, err)
			}
			return m.newIMLink(&imLink{link: daemon.NewLink(c, nil, daemon.LinkConfig{Channel: audit.ChannelIM, Limit: maxIMFrame,
				WriteTimeout: imWriteTimeout}), ver: proto.V1, addr: proto.AddrFrom(addr.Addr()), dir: "out"}), nil
		}
		res, l := m.PingSister(ctx, addr.String())
		if l != nil {
			return l, nil
		}
		last = fmt.Errorf("PING swap with %s: %s: %s", addr, res.Reason, res.Error)
		if !migration.MayFallback(p, peerUpgraded, res.Code == proto.RejectVersion) {
			return nil, last
		}
	}
	return nil, last
}
