package proto

import "encoding/binary"

// NameLookup asks the server for a node's name, by node id: a MOM names
// the sisters it admits, and those that refuse, by the id their PINGs
// carry (docs/PROTOCOL.md section 4.7).
type NameLookup struct {
	v2
	ID   uint32 // chosen by the MOM, echoed in the NodeName
	Node NodeID
}

// Type returns TypeNameLookup.
func (*NameLookup) Type() Type { return TypeNameLookup }

// AppendBody encodes the body.
func (m *NameLookup) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.ID)
	return append(b, m.Node[:]...)
}

func (m *NameLookup) decode(r *reader) {
	m.ID = r.u32("lookup id")
	r.fixed(m.Node[:], "node id")
}

// NodeName statuses.
const (
	NameFound   uint8 = 0 // Name is the node's
	NameUnknown uint8 = 1 // no such node; Name is empty
	NameDeleted uint8 = 2 // the node was deleted; Name is the name it had
)

// NodeName answers a NameLookup.
type NodeName struct {
	v2
	ID     uint32 // the NameLookup's id
	Node   NodeID
	Status uint8  // NameFound, NameUnknown or NameDeleted
	Name   string // empty exactly when the status is NameUnknown
}

// Type returns TypeNodeName.
func (*NodeName) Type() Type { return TypeNodeName }

// AppendBody encodes the body.
func (m *NodeName) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.ID)
	b = append(b, m.Node[:]...)
	b = append(b, m.Status)
	return appendStr(b, m.Name)
}

func (m *NodeName) decode(r *reader) {
	m.ID = r.u32("lookup id")
	r.fixed(m.Node[:], "node id")
	m.Status = r.u8("status")
	r.check("status", r.err != nil || m.Status <= NameDeleted, "status %d", m.Status)
	m.Name = r.str(MaxNameLen, "node name")
	r.check("node name", r.err != nil || (m.Name == "") == (m.Status == NameUnknown), "name %q with status %d", m.Name, m.Status)
}
