// Package sim simulates MOMs in bulk for scale measurements: each Node
// enrolls, keeps a control connection, sends heartbeat PINGs and runs IM
// swaps from its own loopback address, with the same handshake and PING
// code as the MOM daemon but none of its goroutines, files or listeners.
package sim

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/momgate/momgate/internal/enroll"
	"github.com/momgate/momgate/internal/swap"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// Node is one simulated MOM. It is used by one goroutine at a time.
type Node struct {
	Name string
	Addr netip.Addr

	ident    *keys.Identity
	token    *keys.Token
	id       proto.NodeID
	server   [32]byte
	ring     *keys.Holder
	sealer   *ping.Sealer
	verifier *ping.Verifier
	conn     net.Conn
	buf      []byte
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

// dial connects to addr from the node's own address.
func (n *Node) dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: n.Addr.AsSlice()}}
	return d.DialContext(ctx, "tcp", addr)
}

// Connect opens the control connection: enrollment on first use, Hello by
// identity afterwards, then the PING swap with the server.
func (n *Node) Connect(ctx context.Context, server string, timeout time.Duration) error {
	c, err := n.dial(ctx, server)
	if err != nil {
		return fmt.Errorf("node %s: dial %s: %w", n.Name, server, err)
	}
	deadline := time.Now().Add(timeout)
	_ = c.SetDeadline(deadline)
	p := &enroll.Params{Ident: n.ident, Rand: rand.Reader, IMPort: 15003, Versions: proto.VersionBitV2, Token: n.token,
		NodeID: n.id, ServerKey: n.server}
	if n.token == nil {
		for _, k := range n.ring.Load().Keys() {
			p.KeyIDs = append(p.KeyIDs, uint32(k.ID))
		}
	}
	sh, w, err := enroll.Handshake(c, p)
	if err != nil {
		c.Close()
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	ring, err := enroll.Keyring(w, &sh.ServerKey, n.ident, time.Now())
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
	n.token, n.id, n.server = nil, w.NodeID, sh.ServerKey
	var res ping.Result
	if err := swap.Initiate(c, n.sealer, n.verifier, deadline, &res); err != nil {
		c.Close()
		return fmt.Errorf("node %s: swap with server: %w", n.Name, err)
	}
	_ = c.SetDeadline(time.Time{})
	n.conn = c
	return nil
}

// Heartbeat sends one heartbeat Ping on the control connection and waits
// for its verified reply, skipping other server messages.
func (n *Node) Heartbeat(timeout time.Duration) error {
	if n.conn == nil {
		return fmt.Errorf("node %s: not connected", n.Name)
	}
	remote, local, err := swap.Endpoints(n.conn)
	if err != nil {
		return err
	}
	_ = n.conn.SetDeadline(time.Now().Add(timeout))
	frame, rnd, err := n.sealer.Ping(n.buf[:0], local, remote)
	if err != nil {
		return err
	}
	n.buf = frame
	if _, err := n.conn.Write(frame); err != nil {
		return fmt.Errorf("node %s: send heartbeat: %w", n.Name, err)
	}
	for range 16 {
		in, err := proto.ReadFrame(n.conn, n.buf[:0])
		if err != nil {
			return fmt.Errorf("node %s: read heartbeat reply: %w", n.Name, err)
		}
		n.buf = in
		if proto.Type(in[3]) != proto.TypePingReply {
			continue
		}
		var res ping.Result
		return n.verifier.VerifyReply(in, remote, local, &rnd, &res)
	}
	return fmt.Errorf("node %s: no heartbeat reply among 16 frames", n.Name)
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
	if err := swap.Initiate(c, n.sealer, n.verifier, time.Now().Add(timeout), &res); err != nil {
		return fmt.Errorf("node %s: swap with %s: %w", n.Name, addr, err)
	}
	return nil
}

// Close closes the control connection.
func (n *Node) Close() {
	if n.conn != nil {
		n.conn.Close()
		n.conn = nil
	}
}
