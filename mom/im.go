package mom

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/momgate/momgate/proto"
)

// Inbound IM connections: accepted here (serveIM), admitted or refused in
// admit.go, then their requests served (serveAdmitted) until they close.

// maxIMFrame caps frames on an admitted IM connection.
const maxIMFrame = 64 << 10

// serveIM accepts IM connections on ln until ctx ends, then closes them
// and waits for them.
func (m *Mom) serveIM(ctx context.Context, ln net.Listener) {
	conns := m.base.TrackConns(ctx, ln, &m.gauge.im)
	for {
		c, ok := conns.Accept()
		if !ok {
			break
		}
		go func() {
			defer conns.Done(c)
			m.serveIMConn(c)
		}()
	}
	conns.Wait()
}

// serveIMConn admits a sister's IM connection, then serves its requests.
func (m *Mom) serveIMConn(c net.Conn) {
	adm, ok := m.admit(c)
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
