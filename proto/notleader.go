package proto

import "encoding/binary"

// NotLeader is a follower's answer to a control connection: this member of
// the server group does not lead, the leader's control address is Addr:Port
// (all zero when no leader is known), and the connection closes. It is the
// first and only frame the follower sends (docs/PROTOCOL.md section 4.11).
// Nothing authenticates it: a MOM dials the address next only when it is in
// its own list of servers.
type NotLeader struct {
	v2
	Addr   Addr   // the leader's control address; zero when no leader is known
	Port   uint16 // the leader's control port; zero exactly when Addr is zero
	Leader string // the leader's member name (n <= 64); may be empty
}

// Type returns TypeNotLeader.
func (*NotLeader) Type() Type { return TypeNotLeader }

// Known reports whether the frame names a leader.
func (m *NotLeader) Known() bool { return m.Addr != Addr{} }

// AppendBody encodes the body.
func (m *NotLeader) AppendBody(b []byte) []byte {
	b = append(b, m.Addr[:]...)
	b = binary.BigEndian.AppendUint16(b, m.Port)
	return appendStr(b, m.Leader)
}

func (m *NotLeader) decode(r *reader) {
	r.fixed(m.Addr[:], "leader addr")
	m.Port = r.u16("leader port")
	r.check("leader port", r.err != nil || (m.Port == 0) == !m.Known(), "port %d with addr %v", m.Port, m.Addr)
	m.Leader = r.str(MaxNameLen, "leader name")
}
