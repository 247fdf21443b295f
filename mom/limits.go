package mom

import (
	"net"
	"time"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// serveIMLimited applies the per-source limits to a new IM connection: the
// excess is refused with Reject "rate limited", logged and counted under
// reasons.RateLimited; the rest goes on to the PING swap.
func (m *Mom) serveIMLimited(c net.Conn) {
	peer := daemon.PeerAddrPort(c)
	release, err := m.limiter.Admit(peer.Addr())
	if err != nil {
		defer c.Close()
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_ = proto.WriteFrame(c, &proto.Reject{Code: reasons.RateLimited.Code(), Reason: err.Error()})
		m.audit.Record(m.stamp(audit.Entry{Channel: audit.ChannelIM, Outcome: audit.Rejected,
			Reason: reasons.RateLimited, Peer: peer, Detail: err.Error()}))
		return
	}
	m.serveIMConn(c, release)
}
