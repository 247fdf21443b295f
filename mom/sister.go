package mom

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// Outbound IM: a PING swap with a sister (PingSister), an admitted
// connection to one in the best version both ends allow (openIM, with the
// fallback of docs/PROTOCOL.md 4.5), and the requests a mother superior
// sends on it.

// PingSister opens an IM connection to addr and runs the swap; on success
// the connection is returned open for IM traffic (the caller closes it).
func (m *Mom) PingSister(ctx context.Context, addr string) (*admin.PingResult, net.Conn) {
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
	err = daemon.InitiateSwap(c, sealer, m.base.Verifier, time.Now().Add(m.cfg.HandshakeTimeout), &res)
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
			out.Reason = ping.Reason(err)
		}
		entry.Outcome, entry.Reason, entry.Detail = audit.Rejected, out.Reason, "outbound: "+err.Error()
		m.base.Record(entry)
		return out, nil
	}
	out.Admitted = true
	out.NodeID = uuid.UUID(res.Node).String()
	entry.Outcome, entry.Node, entry.KeyID = audit.Accepted, out.NodeID, out.KeyID
	m.base.Record(entry)
	m.peers.admit(res.Sender, res.Node, out.KeyID, "out", res.Timestamp, m.cfg.Now())
	return out, c
}

// openIM opens an admitted IM connection to a sister: the highest version
// both ends allow, PING first when this MOM may, falling back to v1 only
// per migration.MayFallback. A v1 connection is admitted (or refused) by
// the sister on its first IM frame.
func (m *Mom) openIM(ctx context.Context, addr netip.AddrPort) (net.Conn, proto.Version, error) {
	m.lg.mu.Lock()
	p := m.effectiveLocked()
	peerUpgraded := m.lg.upgraded.Contains(proto.AddrFrom(addr.Addr()))
	m.lg.mu.Unlock()
	attempts := migration.Attempts(p, m.currentSealer() != nil)
	if len(attempts) == 0 {
		return nil, 0, fmt.Errorf("this MOM speaks %s but holds no cluster key yet", p)
	}
	var last error
	for _, v := range attempts {
		if v == proto.V1 {
			c, err := m.dial(ctx, addr.String())
			if err != nil {
				return nil, 0, fmt.Errorf("connect to %s: %w", addr, err)
			}
			return c, proto.V1, nil
		}
		res, c := m.PingSister(ctx, addr.String())
		if c != nil {
			return c, proto.V2, nil
		}
		last = fmt.Errorf("PING swap with %s: %s: %s", addr, res.Reason, res.Error)
		if !migration.MayFallback(p, peerUpgraded, res.Code == proto.RejectVersion) {
			return nil, 0, last
		}
	}
	return nil, 0, last
}

func writeIM(c net.Conn, msg proto.Message, timeout time.Duration) error {
	if err := c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	return proto.WriteFrame(c, msg)
}

// readIMReply reads the IMReply for job and seq; a Reject becomes a
// *handshake.RejectError.
func readIMReply(c net.Conn, ver proto.Version, jobName string, seq uint64, timeout time.Duration) (*proto.IMReply, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	frame, err := proto.ReadFrameLimit(c, nil, maxIMFrame)
	if err != nil {
		return nil, fmt.Errorf("read IM reply: %w", err)
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		return nil, fmt.Errorf("decode IM reply: %w", err)
	}
	switch r := msg.(type) {
	case *proto.Reject:
		return nil, handshake.PeerRejected(r)
	case *proto.IMReply:
		switch {
		case r.Ver != ver:
			return nil, fmt.Errorf("IM reply is v%d on a v%d connection", r.Ver, ver)
		case r.Job != jobName || r.Seq != seq:
			return nil, fmt.Errorf("IM reply for %s/%d, expected %s/%d", r.Job, r.Seq, jobName, seq)
		case r.Status != proto.IMOK:
			return nil, fmt.Errorf("sister answered status %d for job %s", r.Status, jobName)
		}
		return r, nil
	}
	return nil, fmt.Errorf("expected IMReply, got %s", msg.Type())
}

func pollOnce(c net.Conn, ver proto.Version, jobName string, seq uint64, timeout time.Duration) error {
	if err := writeIM(c, &proto.IMPoll{Ver: ver, Job: jobName, Seq: seq}, timeout); err != nil {
		return fmt.Errorf("send poll: %w", err)
	}
	_, err := readIMReply(c, ver, jobName, seq, timeout)
	return err
}
