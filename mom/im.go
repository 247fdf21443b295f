package mom

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/audit"
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

// imConn is what admitting one inbound IM connection needs besides the
// connection: its buffered reader (the link reads through it after the
// admission), its first frame's buffer and its place in the per-source
// limits. They are pooled (imConns), so that a connection allocates none
// of them. Reads go through the buffer, writes straight to the connection.
type imConn struct {
	c     net.Conn
	rd    *bufio.Reader
	frame []byte
	slot  connlimit.Slot
	wait  imLink // the table entry of a plain connection waiting for its first request
}

func (x *imConn) Read(p []byte) (int, error)  { return x.rd.Read(p) }
func (x *imConn) Write(p []byte) (int, error) { return x.c.Write(p) }

// firstFrameBuf is the buffer the first frame is read into: a Ping fits.
func (x *imConn) firstFrameBuf() []byte { return x.frame[:0] }

var imConns = sync.Pool{New: func() any {
	return &imConn{rd: bufio.NewReaderSize(nil, imReadBuffer), frame: make([]byte, 0, ping.ExtFrameSize)}
}}

// serveIM accepts IM connections on ln until ctx ends, then closes them
// and waits for them. Each is served on a pooled worker goroutine
// (daemon.Conns.Serve).
func (m *Mom) serveIM(ctx context.Context, ln net.Listener) {
	m.base.TrackConns(ctx, ln, &m.gauge.im).Serve(func(c net.Conn) func() {
		m.serveIMConn(c)
		return nil
	})
}

// serveIMConn admits a sister's IM connection, then serves its requests
// over its link (sealed when the swap made a session), registered so that
// revocation can close it.
func (m *Mom) serveIMConn(c net.Conn) {
	x := imConns.Get().(*imConn)
	x.c = c
	x.rd.Reset(c)
	defer func() {
		x.slot.Release()
		x.c, x.wait = nil, imLink{}
		x.rd.Reset(nil)
		imConns.Put(x)
	}()
	adm, ok := m.admit(x)
	if !ok {
		return
	}
	if adm.SessionSwap && adm.Session == nil {
		m.markPeer(adm.Node, adm.Sender) // none by authenticated agreement: it speaks sessions
	}
	waited := adm.Session == nil && adm.First == nil
	// Unsealed, and no request yet: most such connections only swapped,
	// and close now. The link is made once a request comes.
	if waited && !m.waitFirstRequest(x, &adm) {
		return
	}
	l := m.newIMLink(&imLink{link: daemon.NewLink(c, adm.Session, daemon.LinkConfig{Channel: audit.ChannelIM, Limit: maxIMFrame,
		WriteTimeout: imWriteTimeout, Stats: m.sstats, Reader: x}),
		ver: adm.Version, node: adm.Node, addr: adm.Sender, keyID: adm.KeyID, dir: "in", session: adm.SessionSwap})
	defer m.dropIMLink(l)
	if waited {
		m.ims.remove(&x.wait) // the link is in the table now
	}
	m.serveAdmitted(l, adm.First)
}

// waitFirstRequest waits, registered in the IM table so that revocation
// closes it, until the first byte of an admitted unsealed connection's
// next frame has come, and reports whether one did (not: the peer closed,
// or the idle deadline passed). Nothing is allocated for a connection
// that only swapped. The caller removes x.wait from the table once its
// link is in it.
func (m *Mom) waitFirstRequest(x *imConn, adm *handshake.IMAdmission) bool {
	x.wait = imLink{nc: x.c, ver: adm.Version, node: adm.Node, addr: adm.Sender, keyID: adm.KeyID, dir: "in", session: adm.SessionSwap}
	m.ims.add(&x.wait)
	ok := x.c.SetReadDeadline(time.Now().Add(imIdle)) == nil
	if ok {
		_, err := x.rd.Peek(1)
		ok = err == nil
	}
	if !ok {
		m.ims.remove(&x.wait)
	}
	return ok
}

// imIdle is how long an admitted IM connection may wait for its next request.
const imIdle = 5 * time.Minute

// imWriteTimeout bounds every write on an IM connection.
const imWriteTimeout = 10 * time.Second

// serveAdmitted answers IM requests on an admitted connection (by PING for
// v2, by the list for v1) until it closes or the peer is revoked. Every
// frame must have the connection's version. first, if not nil, is a request
// already read.
func (m *Mom) serveAdmitted(l *imLink, first proto.Message) {
	c, ver, node, src := l.link.NetConn(), l.ver, l.node, l.addr
	msg := first
	keepAlive := false
	for {
		if msg == nil {
			if err := c.SetReadDeadline(time.Now().Add(imIdle)); err != nil {
				return
			}
			frame, err := l.link.ReadFrame()
			if err != nil {
				m.recordSessionFailure(audit.ChannelIM, l.link, node, err)
				return
			}
			m.confirmIMLink(l)
			if proto.Version(frame[2]) != ver {
				_ = l.link.Send(&proto.Reject{Ver: ver, Code: proto.RejectVersion, Reason: fmt.Sprintf("v%d frame on a v%d connection", frame[2], ver)})
				return
			}
			if msg, err = proto.Unmarshal(frame); err != nil {
				_ = l.link.Send(&proto.Reject{Ver: ver, Code: proto.RejectMalformed, Reason: err.Error()})
				return
			}
		}
		if !keepAlive {
			// A connection that carries requests gets TCP keep-alive with
			// its first one; one that only swapped PINGs never needs it.
			keepAlive = true
			if err := daemon.EnableKeepAlive(c); err != nil {
				m.log.WithError(err).Debug("IM connection")
			}
		}
		revoked := m.deny.Revoked(node, proto.Addr{}) // v2: the PING named the node; its key was checked
		if ver == proto.V1 {
			revoked = m.v1Revoked(src)
		}
		if revoked {
			_ = l.link.Send(&proto.Reject{Ver: ver, Code: proto.RejectRevoked, Reason: "sender revoked"})
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
			_ = l.link.Send(&proto.Reject{Ver: ver, Code: proto.RejectMalformed, Reason: "unexpected " + msg.Type().String()})
			return
		}
		msg = nil
		if err := l.link.Send(reply); err != nil {
			return
		}
	}
}
