package mom

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

// Every admitted IM connection, inbound or outbound, is an imLink in the
// MOM's table: a daemon.Link (sealed or not) and who is at the other end.
// The table is what revocation closes (a Deny closes every connection of
// the node at once; a retired cluster key closes the connections admitted
// under it) and what `peers` shows of each session.

// imLink is one admitted IM connection. Its link is nil while a plain
// connection waits for its first request (waitFirstRequest): it is in the
// table then so that revocation closes it, by nc.
type imLink struct {
	link    *daemon.Link
	nc      net.Conn // set when link is nil
	ver     proto.Version
	node    proto.NodeID // v2: the sister's node id
	addr    proto.Addr   // the sister's address
	keyID   uint32       // v2: the cluster key it was admitted under
	dir     string       // "in" or "out"
	session bool         // a session swap made it (sealed, or none by agreement)
	marked  bool         // the sister is marked (its reader only: confirmIMLink)
}

// imLinks is the table of admitted IM connections.
type imLinks struct {
	mu    sync.Mutex
	links map[*imLink]struct{}
}

func newIMLinks() *imLinks { return &imLinks{links: map[*imLink]struct{}{}} }

func (t *imLinks) add(l *imLink) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.links[l] = struct{}{}
}

func (t *imLinks) remove(l *imLink) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.links, l)
}

// closeWhere closes every connection that matches and returns how many.
// What it closes is read under the table's lock: a waiting connection's
// entry is its server's to reuse once removed, its net.Conn is not.
func (t *imLinks) closeWhere(match func(*imLink) bool) int {
	t.mu.Lock()
	var victims []*daemon.Link
	var waiting []net.Conn
	for l := range t.links {
		if !match(l) {
			continue
		}
		if l.link != nil {
			victims = append(victims, l.link)
		} else {
			waiting = append(waiting, l.nc)
		}
	}
	t.mu.Unlock()
	for _, l := range victims {
		l.Close()
	}
	for _, c := range waiting {
		c.Close()
	}
	return len(victims) + len(waiting)
}

// byAddr returns the connections with the sister at addr that have a link
// (a plain one waiting for its first request has none yet).
func (t *imLinks) byAddr(addr proto.Addr) []*imLink {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*imLink
	for l := range t.links {
		if l.addr == addr && l.link != nil {
			out = append(out, l)
		}
	}
	return out
}

// closeRevoked closes, at once, every IM connection of a node or an
// address the server has just denied (docs/PROTOCOL.md 6.7: revocation
// reaches established sessions). A revoked node cannot open another: its
// swap is refused as revoked.
func (m *Mom) closeRevoked(entries []proto.NodeAddr) {
	n := m.ims.closeWhere(func(l *imLink) bool {
		for _, e := range entries {
			if (e.Node != (proto.NodeID{}) && l.node == e.Node) || (e.Addr != (proto.Addr{}) && l.addr == e.Addr) {
				return true
			}
		}
		return false
	})
	if n > 0 {
		m.log.WithField("connections", n).Warn("IM connections of a denied node closed")
	}
}

// closeUnderKey closes every IM connection admitted under a cluster key
// the server has just retired: the key may have been held by a node
// deleted since, which could have stood in the middle of a swap made
// under it (an IM session is as strong as the key that admitted it). The
// peers reconnect under the active key.
func (m *Mom) closeUnderKey(id uint32) {
	n := m.ims.closeWhere(func(l *imLink) bool { return l.ver == proto.V2 && l.keyID == id })
	if n > 0 {
		m.log.WithFields(logrus.Fields{"connections": n, "key": fmt.Sprintf("%08x", id)}).Info("IM connections admitted under a retired key closed; they reconnect under the active key")
	}
}

// newIMLink wraps an admitted IM connection into a link, registers it and
// starts its rekey ticker; the caller closes it with dropIMLink.
func (m *Mom) newIMLink(l *imLink) *imLink {
	m.ims.add(l)
	if l.link.Sealed() { // an unsealed link has no ticker (nor its closure)
		l.link.Start(func(err error) { m.recordSessionFailure(audit.ChannelIM, l.link, l.node, err) })
	}
	return l
}

// dropIMLink closes and unregisters an IM connection.
func (m *Mom) dropIMLink(l *imLink) {
	l.link.Close()
	m.ims.remove(l)
}

// confirmIMLink marks the sister of a sealed IM connection once its first
// record has opened (key confirmation).
func (m *Mom) confirmIMLink(l *imLink) {
	if !l.marked && l.session && l.ver == proto.V2 && (!l.link.Sealed() || l.link.Confirmed()) {
		l.marked = true
		m.markPeer(l.node, l.addr)
	}
}

// withSessions adds to the admitted-peers rows what the live connections
// with each sister show: how many, their protection and the age of their
// keys (the youngest session's).
func (m *Mom) withSessions(rows []admin.AdmittedPeer) []admin.AdmittedPeer {
	for i := range rows {
		a, err := proto.ParseAddr(rows[i].Addr)
		if err != nil {
			continue
		}
		var best *session.Info
		for _, l := range m.ims.byAddr(a) {
			in := l.link.Info()
			rows[i].Sessions++
			if best == nil || in.KeyAge < best.KeyAge {
				best = &in
			}
		}
		if best != nil {
			rows[i].Session = best.Protection.String()
			rows[i].KeyAge = best.KeyAge.Round(100 * time.Millisecond).String()
			rows[i].Rekeys = best.Rekeys
		}
	}
	return rows
}

// imClient is the mother superior's side of an admitted IM connection:
// one request at a time, as PBS's IM requests are, and a reader that
// runs for the connection's life, so that a sealed session's rekey
// messages are answered while the poller waits between polls (the ticker
// starts the rekeys; the reader completes them).
type imClient struct {
	m       *Mom
	l       *imLink
	replies chan imReply
	done    chan struct{}
	wg      sync.WaitGroup
}

// imReply is one frame the reader decoded, or the error it stopped on.
type imReply struct {
	msg proto.Message
	err error
}

// errUnsolicited ends a connection whose sister sends frames nobody asked
// for.
var errUnsolicited = errors.New("sister sent frames no request asked for")

func (m *Mom) newIMClient(l *imLink) *imClient {
	c := &imClient{m: m, l: l, replies: make(chan imReply, 2), done: make(chan struct{})}
	c.wg.Add(1)
	go c.read()
	return c
}

// read delivers every frame of the sister, decoded, until the connection
// ends; a session failure is audited with its reason.
func (c *imClient) read() {
	defer c.wg.Done()
	for {
		frame, err := c.l.link.ReadFrame()
		var r imReply
		if err != nil {
			c.m.recordSessionFailure(audit.ChannelIM, c.l.link, c.l.node, err)
			r.err = fmt.Errorf("read IM reply: %w", err)
		} else if r.msg, err = proto.Unmarshal(frame); err != nil {
			r.err = fmt.Errorf("decode IM reply: %w", err)
		}
		if r.err == nil {
			c.m.confirmIMLink(c.l)
		}
		select {
		case c.replies <- r:
		case <-c.done:
			return
		default:
			r.err = errUnsolicited
			c.l.link.Close()
			select {
			case c.replies <- r:
			default:
			}
			return
		}
		if r.err != nil {
			return
		}
	}
}

// request sends msg and waits, at most timeout, for the next frame.
func (c *imClient) request(msg proto.Message, timeout time.Duration) (proto.Message, error) {
	if err := c.l.link.Send(msg); err != nil {
		return nil, fmt.Errorf("send %s: %w", msg.Type(), err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-c.replies:
		return r.msg, r.err
	case <-t.C:
		return nil, fmt.Errorf("no answer to %s within %s", msg.Type(), timeout)
	}
}

// close ends the connection and the reader.
func (c *imClient) close() {
	close(c.done)
	c.m.dropIMLink(c.l)
	c.wg.Wait()
}

// imReplyFor checks an answer to job's request seq; a Reject becomes a
// *handshake.RejectError.
func imReplyFor(msg proto.Message, ver proto.Version, jobName string, seq uint64) (*proto.IMReply, error) {
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

// poll sends one IMPoll and checks its reply.
func (c *imClient) poll(jobName string, seq uint64, timeout time.Duration) error {
	r, err := c.request(&proto.IMPoll{Ver: c.l.ver, Job: jobName, Seq: seq}, timeout)
	if err != nil {
		return err
	}
	_, err = imReplyFor(r, c.l.ver, jobName, seq)
	return err
}

// join sends IMJoin and checks its reply.
func (c *imClient) join(jobName, mother string, timeout time.Duration) error {
	r, err := c.request(&proto.IMJoin{Ver: c.l.ver, Job: jobName, Mother: mother}, timeout)
	if err != nil {
		return err
	}
	_, err = imReplyFor(r, c.l.ver, jobName, 0)
	return err
}

// nodeText is a node id for logs and audit lines, "" for none.
func nodeText(n proto.NodeID) string {
	if n == (proto.NodeID{}) {
		return ""
	}
	return uuid.UUID(n).String()
}
