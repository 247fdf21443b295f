package mom

import (
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/proto"
)

// A follower of a server group answers a control connection with
// NotLeader, naming the leader's control address, and closes
// (docs/HA.md section 7, docs/PROTOCOL.md section 4.11). Nothing
// authenticates the frame: the control loop dials the address only if it
// is in the MOM's own list (failover.go), and the server reached there
// must prove the pinned group identity like any other.

// errNotLeader is what a control attempt that met a NotLeader returns;
// errors.As gives the *notLeader.
var errNotLeader = errors.New("server is not the group's leader")

// notLeader is a redirect: the leader's control address (invalid when
// the follower knows no leader) and member name, as the follower said.
type notLeader struct {
	Leader netip.AddrPort
	Name   string
}

func (e *notLeader) Error() string {
	if !e.Leader.IsValid() {
		return errNotLeader.Error() + " and knows no leader (an election, or no quorum)"
	}
	name := ""
	if e.Name != "" {
		name = " (" + e.Name + ")"
	}
	return fmt.Sprintf("%s: it names %s%s as the leader", errNotLeader, e.Leader, name)
}

func (e *notLeader) Unwrap() error { return errNotLeader }

// readServerHello reads the first frame of a control connection: the
// ServerHello, or a follower's NotLeader (a *notLeader error).
func readServerHello(r io.Reader) (*proto.ServerHello, error) {
	frame, err := proto.ReadFrameLimit(r, nil, handshake.PreAuthMaxFrame)
	if err != nil {
		return nil, fmt.Errorf("read server hello: %w", err)
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		return nil, fmt.Errorf("decode server hello: %w", err)
	}
	if nl, ok := redirectOf(msg); ok {
		return nil, nl
	}
	sh, ok := msg.(*proto.ServerHello)
	if !ok {
		return nil, fmt.Errorf("expected ServerHello, got %s", msg.Type())
	}
	return sh, nil
}

// redirectOf returns the redirect msg carries, if it is a NotLeader: the
// one place that knows the frame (proto.NotLeader, docs/PROTOCOL.md 4.11).
func redirectOf(msg proto.Message) (*notLeader, bool) {
	nl, ok := msg.(*proto.NotLeader)
	if !ok {
		return nil, false
	}
	r := &notLeader{Name: nl.Leader}
	if nl.Known() {
		r.Leader = netip.AddrPortFrom(nl.Addr.Netip(), nl.Port)
	}
	return r, true
}
