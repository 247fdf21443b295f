// Package sim simulates MOMs in bulk for scale measurements: each Node
// enrolls, keeps a control connection, sends heartbeat PINGs and runs IM
// swaps from its own loopback address, with the same handshake and PING
// code as the MOM daemon but none of its goroutines, files or listeners.
package sim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/rotation"
)

// Node is one simulated MOM. Its methods are called by one goroutine at a
// time; while it is connected, a reader goroutine of its own (started by
// Connect, ended by Close or the context given to Connect) serves the
// server's messages on the control connection: key rotation (KeyUpdate,
// KeyActivate, KeyRetire, as momgate-mom does, without writing a
// keyring file), deny lists (counted) and heartbeat replies (verified,
// and answered with the next heartbeat of a batch, see Heartbeats).
type Node struct {
	Name string
	Addr netip.Addr

	ident    *keys.Identity
	token    *keys.Token
	id       proto.NodeID
	server   [32]byte
	ring     *keys.Holder
	wrapper  *keys.Wrapper // unwraps keys the server wraps for this node
	sealer   *ping.Sealer
	verifier *ping.Verifier
	stats    *Stats
	conn     net.Conn
	buf      []byte

	wmu     sync.Mutex // serialises writes on conn: heartbeats and KeyAcks
	hb      heartbeatBatch
	done    chan struct{} // closed when the reader ends
	stop    func() bool   // unhooks the context's close of conn
	readErr error         // why the reader ended; read after done
}

// Stats counts what the simulated nodes of a run received and sent on
// their control connections. Safe for concurrent use.
type Stats struct {
	mu         sync.Mutex
	frames     map[proto.Type]int64 // received, by type
	bytes      map[proto.Type]int64 // received, by type, headers included
	acks       int64                // KeyAck frames sent
	ackBytes   int64
	errors     int64 // key messages that could not be applied
	activated  map[keys.KeyID]int
	retired    map[keys.KeyID]int
	lastActive map[keys.KeyID]time.Time // when the last node activated the key
	lastRetire map[keys.KeyID]time.Time // when the last node retired the key
}

// NewStats returns empty counters.
func NewStats() *Stats {
	return &Stats{frames: map[proto.Type]int64{}, bytes: map[proto.Type]int64{}, activated: map[keys.KeyID]int{},
		retired: map[keys.KeyID]int{}, lastActive: map[keys.KeyID]time.Time{}, lastRetire: map[keys.KeyID]time.Time{}}
}

func (s *Stats) frame(t proto.Type, size int) {
	s.mu.Lock()
	s.frames[t]++
	s.bytes[t] += int64(size)
	s.mu.Unlock()
}

func (s *Stats) keyEvent(count map[keys.KeyID]int, last map[keys.KeyID]time.Time, id keys.KeyID) {
	s.mu.Lock()
	count[id]++
	last[id] = time.Now()
	s.mu.Unlock()
}

// Retired returns how many nodes dropped key id, and when the last did.
func (s *Stats) Retired(id keys.KeyID) (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retired[id], s.lastRetire[id]
}

// Activated returns how many nodes seal with key id, and when the last
// switched.
func (s *Stats) Activated(id keys.KeyID) (int, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.activated[id], s.lastActive[id]
}

// Traffic is a snapshot of the rotation and deny traffic counted so far.
type Traffic struct {
	Frames   map[proto.Type]int64 // received by the nodes, by type
	Bytes    map[proto.Type]int64
	Acks     int64 // KeyAck frames sent by the nodes
	AckBytes int64
	Errors   int64
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() Traffic {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := Traffic{Frames: map[proto.Type]int64{}, Bytes: map[proto.Type]int64{}, Acks: s.acks, AckBytes: s.ackBytes, Errors: s.errors}
	for k, v := range s.frames {
		t.Frames[k] = v
	}
	for k, v := range s.bytes {
		t.Bytes[k] = v
	}
	return t
}

// Sub is t minus an earlier snapshot u.
func (t Traffic) Sub(u Traffic) Traffic {
	out := Traffic{Frames: map[proto.Type]int64{}, Bytes: map[proto.Type]int64{}, Acks: t.Acks - u.Acks,
		AckBytes: t.AckBytes - u.AckBytes, Errors: t.Errors - u.Errors}
	for k, v := range t.Frames {
		out.Frames[k] = v - u.Frames[k]
	}
	for k, v := range t.Bytes {
		out.Bytes[k] = v - u.Bytes[k]
	}
	return out
}

// NewNode makes a node that will enroll with token from addr.
func NewNode(name string, addr netip.Addr, token string) (*Node, error) {
	tok, err := keys.ParseToken(token)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	ident, err := keys.GenerateIdentity(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Node{Name: name, Addr: addr, ident: ident, token: &tok, ring: keys.NewHolder(keys.NewKeyring())}, nil
}

// SetStats makes the node count its control traffic in st (before Connect).
func (n *Node) SetStats(st *Stats) { n.stats = st }

// dial connects to addr from the node's own address.
func (n *Node) dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: n.Addr.AsSlice()}}
	return d.DialContext(ctx, "tcp", addr)
}

// Connect opens the control connection: enrollment on first use, Hello by
// identity afterwards, then the PING swap with the server; then it starts
// the node's reader, which runs until Close or until ctx ends.
func (n *Node) Connect(ctx context.Context, server string, timeout time.Duration) error {
	return n.connect(ctx, server, timeout, 0)
}

// connect is Connect with the TCP connect bounded by connectTimeout (0:
// by timeout and ctx only).
func (n *Node) connect(ctx context.Context, server string, timeout, connectTimeout time.Duration) error {
	dctx := ctx
	if connectTimeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, connectTimeout)
		defer cancel()
	}
	c, err := n.dial(dctx, server)
	if err != nil {
		return fmt.Errorf("node %s: dial %s: %w", n.Name, server, err)
	}
	deadline := time.Now().Add(timeout)
	_ = c.SetDeadline(deadline)
	p := &handshake.MomParams{Ident: n.ident, Rand: rand.Reader, IMPort: 15003, Versions: proto.VersionBitV2, Token: n.token,
		NodeID: n.id, ServerKey: n.server}
	if n.token == nil {
		for _, k := range n.ring.Load().Keys() {
			p.KeyIDs = append(p.KeyIDs, uint32(k.ID))
		}
	}
	// A follower of a group answers NotLeader (*NotLeaderError); every
	// member proves the identity the enrollment pinned (Prove).
	sh, err := readServerHello(c)
	var w *proto.Welcome
	if err == nil {
		w, err = handshake.Prove(c, sh, p)
	}
	if err != nil {
		c.Close()
		return fmt.Errorf("node %s: %s: %w", n.Name, server, err)
	}
	ring, err := handshake.Keyring(w, &sh.ServerKey, n.ident, time.Now())
	if err != nil {
		c.Close()
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	n.ring.Store(ring)
	if n.sealer == nil {
		st, err := ping.NewStamper(time.Now, &ping.MemCeiling{}, 0)
		if err != nil {
			c.Close()
			return err
		}
		n.sealer = &ping.Sealer{Keys: n.ring, Stamper: st, Rand: rand.Reader, Node: w.NodeID}
		n.verifier = &ping.Verifier{Keys: n.ring, Guard: ping.NewGuard(ping.GuardConfig{Capacity: 4}, nil), Now: time.Now}
	}
	if n.wrapper == nil || n.server != sh.ServerKey {
		// Once per server identity (as momgate-mom keeps it): a box
		// precomputation is a scalar multiplication, a quarter of the
		// simulator's CPU in a reconnection storm when made per session.
		n.wrapper = keys.NewWrapper(&sh.ServerKey, &n.ident.Private)
	}
	n.token, n.id, n.server = nil, w.NodeID, sh.ServerKey
	var res ping.Result
	if err := daemon.InitiateSwap(c, n.sealer, n.verifier, deadline, &res); err != nil {
		c.Close()
		return fmt.Errorf("node %s: swap with server: %w", n.Name, err)
	}
	_ = c.SetDeadline(time.Time{})
	n.conn = c
	if n.stats == nil {
		n.stats = NewStats()
	}
	n.done, n.readErr = make(chan struct{}), nil
	n.stop = context.AfterFunc(ctx, func() { c.Close() })
	go n.read(c)
	return nil
}

// NotLeaderError is a control attempt answered by a follower of a server
// group (proto.NotLeader, docs/PROTOCOL.md 4.11): Leader is the leader's
// control address it named, invalid when it knows none.
type NotLeaderError struct {
	Leader netip.AddrPort
	Name   string
}

func (e *NotLeaderError) Error() string {
	if !e.Leader.IsValid() {
		return "not the group's leader, and knows no leader"
	}
	return fmt.Sprintf("not the group's leader: %s (%s) leads", e.Name, e.Leader)
}

// readServerHello reads the first frame of a control connection: the
// ServerHello, or a follower's NotLeader (a *NotLeaderError), as
// momgate-mom does (mom/redirect.go).
func readServerHello(r io.Reader) (*proto.ServerHello, error) {
	frame, err := proto.ReadFrameLimit(r, nil, handshake.PreAuthMaxFrame)
	if err != nil {
		return nil, fmt.Errorf("read server hello: %w", err)
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		return nil, fmt.Errorf("decode server hello: %w", err)
	}
	switch m := msg.(type) {
	case *proto.ServerHello:
		return m, nil
	case *proto.NotLeader:
		e := &NotLeaderError{Name: m.Leader}
		if m.Known() {
			e.Leader = netip.AddrPortFrom(m.Addr.Netip(), m.Port)
		}
		return nil, e
	}
	return nil, fmt.Errorf("expected ServerHello, got %s", msg.Type())
}

// read serves the server's messages on c until it fails or is closed.
func (n *Node) read(c net.Conn) {
	defer close(n.done)
	buf := make([]byte, 0, 256)
	for {
		frame, err := proto.ReadFrameLimit(c, buf[:cap(buf)], 1<<20)
		if err != nil {
			n.readErr = err
			return
		}
		buf = frame
		t := proto.Type(frame[3])
		if t == proto.TypePingReply {
			n.heartbeatReply(c, frame)
			continue
		}
		n.stats.frame(t, len(frame))
		if err := n.handle(c, frame); err != nil {
			n.stats.mu.Lock()
			n.stats.errors++
			n.stats.mu.Unlock()
			n.readErr = fmt.Errorf("node %s: %w", n.Name, err)
			c.Close()
			return
		}
	}
}

// handle applies one server message, as momgate-mom does (mom/keys.go),
// keeping the keyring in memory only.
func (n *Node) handle(c net.Conn, frame []byte) error {
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		return fmt.Errorf("decode %s: %w", proto.Type(frame[3]), err)
	}
	ring := n.ring.Load()
	switch m := msg.(type) {
	case *proto.KeyUpdate:
		ack := &proto.KeyAck{Rotation: m.Rotation, KeyID: m.Key.KeyID}
		k, err := n.wrapper.Unwrap(handshake.FromWire(m.Key), time.Now())
		if err == nil {
			ring, _, err = rotation.ApplyUpdate(ring, k)
			k.Zero()
		}
		if err != nil {
			ack.Status = 1
		} else {
			n.ring.Store(ring)
		}
		n.wmu.Lock()
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		err = proto.WriteFrame(c, ack)
		n.wmu.Unlock()
		if err != nil {
			return fmt.Errorf("send KeyAck: %w", err)
		}
		n.stats.mu.Lock()
		n.stats.acks++
		n.stats.ackBytes += int64(frameSize(ack))
		n.stats.mu.Unlock()
	case *proto.KeyActivate:
		id := keys.KeyID(m.KeyID)
		if ring, _, err = rotation.ApplyActivate(ring, id); err != nil {
			return fmt.Errorf("server activated key %s: %w", id, err)
		}
		n.ring.Store(ring)
		n.stats.keyEvent(n.stats.activated, n.stats.lastActive, id)
	case *proto.KeyRetire:
		id := keys.KeyID(m.KeyID)
		if ring, _, err = rotation.ApplyRetire(ring, id); err != nil {
			return fmt.Errorf("server retired key %s: %w", id, err)
		}
		n.ring.Store(ring)
		n.stats.keyEvent(n.stats.retired, n.stats.lastRetire, id)
	}
	// Deny, DenySet and DenyLift are counted by read; a simulated node admits no
	// one but the real MOM, so it keeps no deny list.
	return nil
}

func frameSize(m proto.Message) int { return len(proto.Marshal(m)) }

// heartbeatBatch is a node's heartbeats in flight: one Ping at a time,
// the next sent by the reader as soon as the reply to the last is verified.
type heartbeatBatch struct {
	mu            sync.Mutex
	left          int // heartbeats still to send after the one in flight; -1: no batch
	rnd           [ping.RandomSize]byte
	remote, local proto.Addr
	err           error
	done          chan struct{} // closed when the batch ends
}

// Heartbeat sends one heartbeat Ping and waits for its verified reply.
func (n *Node) Heartbeat(timeout time.Duration) error { return n.Heartbeats(1, timeout) }

// Heartbeats sends k heartbeat Pings on the control connection, one at a
// time: the node's reader verifies each reply and sends the next Ping at
// once, without a goroutine handoff per heartbeat, so that the simulator
// spends as little as it can per heartbeat and the server's cost is what
// is measured. The whole batch must end within k x timeout.
func (n *Node) Heartbeats(k int, timeout time.Duration) error {
	if n.conn == nil {
		return fmt.Errorf("node %s: not connected", n.Name)
	}
	if k <= 0 {
		return nil
	}
	remote, local, err := daemon.Endpoints(n.conn)
	if err != nil {
		return err
	}
	b := &n.hb
	b.mu.Lock()
	b.left, b.remote, b.local, b.err, b.done = k-1, remote, local, nil, make(chan struct{})
	done := b.done
	err = n.sendHeartbeatLocked(n.conn, timeout)
	b.mu.Unlock()
	if err != nil {
		n.endBatch(err)
		return err
	}
	t := time.NewTimer(time.Duration(k) * timeout)
	defer t.Stop()
	select {
	case <-done:
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.err
	case <-n.done:
		n.endBatch(nil)
		return fmt.Errorf("node %s: control connection ended: %w", n.Name, n.readErr)
	case <-t.C:
		n.endBatch(nil)
		return fmt.Errorf("node %s: heartbeats not answered within %s", n.Name, time.Duration(k)*timeout)
	}
}

// sendHeartbeatLocked seals and sends the batch's next Ping; n.hb.mu is held.
func (n *Node) sendHeartbeatLocked(c net.Conn, timeout time.Duration) error {
	b := &n.hb
	frame, rnd, err := n.sealer.Ping(n.buf[:0], b.local, b.remote)
	if err != nil {
		return err
	}
	n.buf, b.rnd = frame, rnd
	n.wmu.Lock()
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	_, err = c.Write(frame)
	n.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("node %s: send heartbeat: %w", n.Name, err)
	}
	return nil
}

// heartbeatReply verifies a PingReply read by the reader against the Ping
// in flight and sends the batch's next Ping, or ends the batch. A reply
// with no batch in flight is stale and dropped.
func (n *Node) heartbeatReply(c net.Conn, frame []byte) {
	b := &n.hb
	b.mu.Lock()
	if b.done == nil || b.left < 0 {
		b.mu.Unlock()
		return
	}
	var res ping.Result
	err := n.verifier.VerifyReply(frame, b.remote, b.local, &b.rnd, &res)
	if err == nil && b.left > 0 {
		b.left--
		if err = n.sendHeartbeatLocked(c, 30*time.Second); err == nil {
			b.mu.Unlock()
			return
		}
	}
	b.mu.Unlock()
	n.endBatch(err)
}

// endBatch ends the batch in flight, if any, with err.
func (n *Node) endBatch(err error) {
	b := &n.hb
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done == nil || b.left < 0 {
		return
	}
	b.left, b.err = -1, err
	close(b.done)
}

// Up reports whether the control connection is open and served.
func (n *Node) Up() bool {
	if n.conn == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Err is why the node's reader ended (nil while it runs or after Close).
func (n *Node) Err() error {
	if n.done == nil {
		return nil
	}
	select {
	case <-n.done:
		if errors.Is(n.readErr, net.ErrClosed) {
			return nil
		}
		return n.readErr
	default:
		return nil
	}
}

// Swap runs an IM PING swap with the MOM at addr on a new connection and
// closes it.
func (n *Node) Swap(ctx context.Context, addr string, timeout time.Duration) error {
	c, err := n.dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("node %s: dial %s: %w", n.Name, addr, err)
	}
	defer c.Close()
	var res ping.Result
	if err := daemon.InitiateSwap(c, n.sealer, n.verifier, time.Now().Add(timeout), &res); err != nil {
		return fmt.Errorf("node %s: swap with %s: %w", n.Name, addr, err)
	}
	return nil
}

// Close closes the control connection and waits for the reader to end.
func (n *Node) Close() {
	if n.conn != nil {
		n.stop()
		n.conn.Close()
		<-n.done
		n.conn = nil
	}
}
