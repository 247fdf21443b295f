package server

import (
	"context"
	"net"
	"time"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// serveLimited applies the per-source limits to a new control connection:
// the excess is refused with Reject "rate limited", logged and counted under
// reasons.RateLimited; the rest is served.
func (s *Server) serveLimited(ctx context.Context, c net.Conn) {
	peer := daemon.PeerAddrPort(c)
	release, err := s.limiter.Admit(peer.Addr())
	if err != nil {
		defer c.Close()
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_ = proto.WriteFrame(c, &proto.Reject{Code: reasons.RateLimited.Code(), Reason: err.Error()})
		s.audit.Record(s.stamp(audit.Entry{Channel: audit.ChannelControl, Outcome: audit.Rejected,
			Reason: reasons.RateLimited, Peer: peer, Detail: err.Error()}))
		return
	}
	s.serveConn(ctx, c, release)
}
