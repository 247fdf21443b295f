package mom

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// Inbound IM connections: accepted here (serveIM), admitted or refused in
// admit.go, then their requests served (serveAdmitted) until they close.

// maxIMFrame caps frames on an admitted IM connection.
const maxIMFrame = 64 << 10

// imReadBuffer is the read buffer of an IM connection: one read(2) brings
// in a whole Ping or request frame, header and body, where reading them
// apart took two.
const imReadBuffer = 256

// imConn is what serving one inbound IM connection needs besides the
// connection: its buffered reader, its frame buffer and its place in the
// per-source limits. They are pooled (imConns), so that a connection
// allocates none of them. Reads go through the buffer, writes straight to
// the connection.
type imConn struct {
	c     net.Conn
	rd    *bufio.Reader
	frame []byte
	slot  connlimit.Slot
}

func (x *imConn) Read(p []byte) (int, error)  { return x.rd.Read(p) }
func (x *imConn) Write(p []byte) (int, error) { return x.c.Write(p) }

var imConns = sync.Pool{New: func() any {
	return &imConn{rd: bufio.NewReaderSize(nil, imReadBuffer), frame: make([]byte, 0, 512)}
}}

// serveIM accepts IM connections on ln until ctx ends, then closes them
// and waits for them.
func (m *Mom) serveIM(ctx context.Context, ln net.Listener) {
	m.base.TrackConns(ctx, ln, &m.gauge.im).Serve(func(c net.Conn) func() {
		m.serveIMConn(c)
		return nil
	})
}

// serveIMConn admits a sister's IM connection, then serves its requests.
func (m *Mom) serveIMConn(c net.Conn) {
	x := imConns.Get().(*imConn)
	x.c = c
	x.rd.Reset(c)
	defer func() {
		x.slot.Release()
		x.c = nil
		x.rd.Reset(nil)
		if cap(x.frame) > 4<<10 {
			x.frame = make([]byte, 0, 512) // a large request grew it
		}
		imConns.Put(x)
	}()
	adm, ok := m.admit(x)
	if !ok {
		return
	}
	m.serveAdmitted(x, adm.Version, adm.Node, adm.Sender, adm.First)
}

// serveAdmitted answers IM requests on an admitted connection (by PING for
// v2, by the list for v1) until it closes or the peer is revoked. Every
// frame must have the connection's version. first, if not nil, is a request
// already read. A connection that carries requests gets TCP keep-alive
// with its first one; one that only swapped PINGs never needs it.
func (m *Mom) serveAdmitted(x *imConn, ver proto.Version, node proto.NodeID, src proto.Addr, first proto.Message) {
	c := x.c
	msg := first
	for served := 0; ; served++ {
		if msg == nil {
			if err := c.SetReadDeadline(time.Now().Add(5 * time.Minute)); err != nil {
				return
			}
			frame, err := proto.ReadFrameLimit(x, x.frame[:cap(x.frame)], maxIMFrame)
			if err != nil {
				return
			}
			x.frame = frame[:0]
			if proto.Version(frame[2]) != ver {
				_ = proto.WriteFrame(c, &proto.Reject{Ver: ver, Code: proto.RejectVersion, Reason: fmt.Sprintf("v%d frame on a v%d connection", frame[2], ver)})
				return
			}
			if msg, err = proto.Unmarshal(frame); err != nil {
				_ = proto.WriteFrame(c, &proto.Reject{Ver: ver, Code: proto.RejectMalformed, Reason: err.Error()})
				return
			}
		}
		if served == 0 {
			if err := daemon.EnableKeepAlive(c); err != nil {
				m.log.WithError(err).Debug("IM connection")
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

// firstFrameBuf is the buffer the first frame of an IM connection is read
// into: a Ping fits.
func (x *imConn) firstFrameBuf() []byte {
	if cap(x.frame) < ping.FrameSize {
		x.frame = make([]byte, 0, 512)
	}
	return x.frame[:0]
}
