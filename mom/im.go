package mom

import (
	"fmt"
	"net"
	"time"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/proto"
)

// Inbound IM connections: accepted by the daemon skeleton
// (daemon.Base.Accept) within the per-source limits, admitted or refused
// in admit.go, then their requests served (serveAdmitted) until they close.

// maxIMFrame caps frames on an admitted IM connection.
const maxIMFrame = 64 << 10

// acceptIM serves a new IM connection within the per-source limits.
func (m *Mom) acceptIM(c net.Conn) {
	if release, ok := m.base.AdmitSource(c, audit.ChannelIM); ok {
		m.serveIMConn(c, release)
	}
}

// serveIMConn admits a sister's IM connection, calling release once the
// decision is made, then serves its requests.
func (m *Mom) serveIMConn(c net.Conn, release connlimit.Release) {
	defer c.Close()
	adm, ok := m.admit(c, release)
	if !ok {
		return
	}
	m.serveAdmitted(c, adm.Version, adm.Node, adm.Sender, adm.First)
}

// serveAdmitted answers IM requests on an admitted connection (by PING for
// v2, by the list for v1) until it closes or the peer is revoked. Every
// frame must have the connection's version. first, if not nil, is a request
// already read.
func (m *Mom) serveAdmitted(c net.Conn, ver proto.Version, node proto.NodeID, src proto.Addr, first proto.Message) {
	buf := make([]byte, 0, 512)
	msg := first
	for {
		if msg == nil {
			if err := c.SetReadDeadline(time.Now().Add(5 * time.Minute)); err != nil {
				return
			}
			frame, err := proto.ReadFrameLimit(c, buf[:cap(buf)], maxIMFrame)
			if err != nil {
				return
			}
			if proto.Version(frame[2]) != ver {
				_ = proto.WriteFrame(c, &proto.Reject{Ver: ver, Code: proto.RejectVersion, Reason: fmt.Sprintf("v%d frame on a v%d connection", frame[2], ver)})
				return
			}
			if msg, err = proto.Unmarshal(frame); err != nil {
				_ = proto.WriteFrame(c, &proto.Reject{Ver: ver, Code: proto.RejectMalformed, Reason: err.Error()})
				return
			}
		}
		revoked := m.deny.Revoked(node, proto.Addr{}) // v2: the PING named the node; its key was checked
		if ver == proto.V1 {
			revoked = m.v1Revoked(src)
		}
		if revoked {
			_ = proto.WriteFrame(c, &proto.Reject{Ver: ver, Code: proto.RejectRevoked, Reason: "sender revoked"})
			return
		}
		var reply proto.Message
		switch v := msg.(type) {
		case *proto.IMJoin:
			m.jobs.join(v.Job, v.Mother)
			reply = &proto.IMReply{Ver: ver, Job: v.Job, Status: proto.IMOK}
		case *proto.IMPoll:
			st := proto.IMUnknownJob
			if m.jobs.joined(v.Job) {
				st = proto.IMOK
			}
			reply = &proto.IMReply{Ver: ver, Job: v.Job, Seq: v.Seq, Status: st}
		default:
			_ = proto.WriteFrame(c, &proto.Reject{Ver: ver, Code: proto.RejectMalformed, Reason: "unexpected " + msg.Type().String()})
			return
		}
		msg = nil
		if err := writeIM(c, reply, 10*time.Second); err != nil {
			return
		}
	}
}
