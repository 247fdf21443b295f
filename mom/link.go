package mom

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// The control connection as the rest of the MOM uses it: its writer, set
// by the session that owns it (KeyAck, NodeLookup), and the node lookups
// waiting for their answer on it (docs/PROTOCOL.md 4.7).

// ErrUnknownSister means the server has no node of that name.
var ErrUnknownSister = errors.New("no such node")

// link is the current control connection's writer and the lookups
// pending on it.
type link struct {
	mu       sync.Mutex
	send     func(proto.Message) error // writes on the control connection; nil if none
	ver      proto.Version
	lookups  map[uint32]chan *proto.NodeAddress
	floors   map[uint32]chan *proto.FloorAnswer
	lookupID uint32
	names    map[string]netip.AddrPort // sister IM addresses last looked up
	// probe: the current control session is sealed and its Welcome
	// confirmed the recovery attestation (docs/PROTOCOL.md 4.9).
	probe bool
}

// setFloorProbe records whether the current control session carries
// recovery lookups.
func (l *link) setFloorProbe(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.probe = on && l.send != nil
}

func newLink() *link {
	return &link{lookups: map[uint32]chan *proto.NodeAddress{}, floors: map[uint32]chan *proto.FloorAnswer{},
		names: map[string]netip.AddrPort{}}
}

// version is the version of the current control connection, 0 if none.
func (l *link) version() proto.Version {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.send == nil {
		return 0
	}
	return l.ver
}

// setControlWriter installs (or, with nil, removes) the writer of the
// current control connection. A removed connection's session ends, and
// the lookups sent on it fail at once so that their callers retry on the
// next connection.
func (m *Mom) setControlWriter(w func(proto.Message) error, ver proto.Version) {
	if w == nil {
		m.endControlSession()
		m.names.abandon()
	}
	l := m.ctl
	l.mu.Lock()
	defer l.mu.Unlock()
	l.send, l.ver = w, ver
	if w == nil {
		l.probe = false
		for id, ch := range l.lookups {
			close(ch)
			delete(l.lookups, id)
		}
		for id, ch := range l.floors {
			close(ch)
			delete(l.floors, id)
		}
	}
}

// sendControl writes a message to the server on the current v2 control
// connection (the writer heartbeat installs with setControlWriter).
func (m *Mom) sendControl(msg proto.Message) error {
	m.ctl.mu.Lock()
	w, ver := m.ctl.send, m.ctl.ver
	m.ctl.mu.Unlock()
	if w == nil || ver != proto.V2 {
		return errors.New("not connected to the server")
	}
	return w(msg)
}

// answer hands a NodeAddress to the lookup waiting for it.
func (l *link) answer(a *proto.NodeAddress) {
	l.mu.Lock()
	ch := l.lookups[a.ID]
	delete(l.lookups, a.ID)
	l.mu.Unlock()
	if ch != nil {
		ch <- a // buffered, one reply per id
	}
}

// answerFloor hands a FloorAnswer to the attestation waiting for it.
func (l *link) answerFloor(a *proto.FloorAnswer) {
	l.mu.Lock()
	ch := l.floors[a.ID]
	delete(l.floors, a.ID)
	l.mu.Unlock()
	if ch != nil {
		ch <- a // buffered, one reply per id
	}
}

// floorWait bounds how long an admission waits for the server's
// attestation (docs/PROTOCOL.md section 4.9).
const floorWait = 2 * time.Second

// recoveryWait bounds how long an admission waits for a recovery
// attestation: the server waits floorWait for the sender's FloorStamp and
// then answers unknown, so a little longer.
const recoveryWait = floorWait + time.Second

// attest is the verifier's Attest (ping.Verifier): the server's
// attestation of a sister this MOM holds no vouched mark for, asked on the
// current PING control connection, once per PING, within floorWait; none
// (Attestation{}) without a connection or an answer. A MOM that lost its
// marks asks for the recovery attestation (RecoveryLookup: a stamp the
// sister made after the lookup reached the server), the only one its
// guard counts, and only on a sealed session whose Welcome confirmed it;
// without one it gets none, and keeps refusing that sister as without a
// server (docs/PROTOCOL.md sections 3.4 and 4.9).
func (m *Mom) attest(node proto.NodeID) ping.Attestation {
	recovering := m.base.Verifier.Guard.Recovering()
	l := m.ctl
	l.mu.Lock()
	send, ver, probe := l.send, l.ver, l.probe
	if send == nil || ver != proto.V2 || (recovering && !probe) {
		l.mu.Unlock()
		return ping.Attestation{}
	}
	l.lookupID++
	id := l.lookupID
	ch := make(chan *proto.FloorAnswer, 1)
	l.floors[id] = ch
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.floors, id)
		l.mu.Unlock()
	}()
	var q proto.Message = &proto.FloorLookup{ID: id, Node: node}
	want, wait := proto.FloorAttested, floorWait
	if recovering {
		q, want, wait = &proto.RecoveryLookup{ID: id, Node: node}, proto.FloorFresh, recoveryWait
	}
	if err := send(q); err != nil {
		return ping.Attestation{}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case a := <-ch:
		if a == nil || a.Status != want || a.Node != node {
			return ping.Attestation{}
		}
		return ping.Attestation{Floor: a.Floor, OK: true, Fresh: want == proto.FloorFresh}
	case <-t.C:
		return ping.Attestation{}
	}
}

// answerProbe answers the server's FloorProbe (sealed sessions only) with
// the next stamp of this MOM's stamper: above every PING it sealed before,
// which is what the server attests to a sister that lost its marks. A
// stamper that fails (its ceiling cannot be saved) answers nothing, and
// the server answers unknown.
func (m *Mom) answerProbe(p *proto.FloorProbe) {
	ts, err := m.base.Stamper.Next()
	if err != nil {
		m.log.WithError(err).Error("floor probe: no stamp to answer with")
		return
	}
	if err := m.sendControl(&proto.FloorStamp{ID: p.ID, Stamp: ts}); err != nil {
		m.log.WithError(err).Warn("floor probe: answer not sent")
	}
}

// lookup resolves a sister's IM address by node name: through the server
// when the control connection is up (so a readdressed node is found), else
// from the last answer.
func (m *Mom) lookup(ctx context.Context, name string) (netip.AddrPort, error) {
	l := m.ctl
	l.mu.Lock()
	cached, have := l.names[name]
	ctl, ver := l.send, l.ver
	var ch chan *proto.NodeAddress
	var id uint32
	if ctl != nil {
		l.lookupID++
		id = l.lookupID
		ch = make(chan *proto.NodeAddress, 1)
		l.lookups[id] = ch
	}
	l.mu.Unlock()
	if ctl == nil {
		if have {
			return cached, nil
		}
		return netip.AddrPort{}, fmt.Errorf("look up %s: not connected to the server", name)
	}
	defer func() {
		l.mu.Lock()
		delete(l.lookups, id)
		l.mu.Unlock()
	}()
	if err := ctl(&proto.NodeLookup{Ver: ver, ID: id, Name: name}); err != nil {
		if have {
			return cached, nil
		}
		return netip.AddrPort{}, fmt.Errorf("look up %s: %w", name, err)
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case r := <-ch:
		if r == nil { // the control connection ended
			if have {
				return cached, nil
			}
			return netip.AddrPort{}, fmt.Errorf("look up %s: the control connection to the server changed", name)
		}
		if r.Status != proto.LookupFound {
			return netip.AddrPort{}, fmt.Errorf("look up %s: %w", name, ErrUnknownSister)
		}
		ap := netip.AddrPortFrom(r.Addr.Netip(), r.Port)
		l.mu.Lock()
		l.names[name] = ap
		l.mu.Unlock()
		return ap, nil
	case <-t.C:
	case <-ctx.Done():
		return netip.AddrPort{}, ctx.Err()
	}
	if have {
		return cached, nil
	}
	return netip.AddrPort{}, fmt.Errorf("look up %s: the server did not answer", name)
}
