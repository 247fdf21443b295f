package proto

import "encoding/binary"

// FloorLookup asks the server for its attestation of a sender the MOM holds
// no vouched replay mark for (docs/PROTOCOL.md sections 3.4 and 4.9).
type FloorLookup struct {
	v2
	ID   uint32 // chosen by the MOM, echoed in the FloorAnswer
	Node NodeID // the sender
}

// Type returns TypeFloorLookup.
func (*FloorLookup) Type() Type { return TypeFloorLookup }

// AppendBody encodes the body.
func (m *FloorLookup) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.ID)
	return append(b, m.Node[:]...)
}

func (m *FloorLookup) decode(r *reader) {
	m.ID = r.u32("lookup id")
	r.fixed(m.Node[:], "node id")
}

// FloorAnswer statuses.
const (
	FloorAttested uint8 = 0 // Floor is the server's attestation
	FloorUnknown  uint8 = 1 // the server cannot attest this sender now
)

// FloorAnswer answers a FloorLookup: every PING the sender sealed before
// the server's attested floor is at or below it.
type FloorAnswer struct {
	v2
	ID     uint32 // the FloorLookup's id
	Node   NodeID
	Status uint8  // FloorAttested, FloorUnknown or FloorFresh
	Floor  uint64 // ns; 0 when unknown
}

// Type returns TypeFloorAnswer.
func (*FloorAnswer) Type() Type { return TypeFloorAnswer }

// AppendBody encodes the body.
func (m *FloorAnswer) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.ID)
	b = append(b, m.Node[:]...)
	b = append(b, m.Status)
	return binary.BigEndian.AppendUint64(b, m.Floor)
}

func (m *FloorAnswer) decode(r *reader) {
	m.ID = r.u32("lookup id")
	r.fixed(m.Node[:], "node id")
	m.Status = r.u8("status")
	r.check("status", r.err != nil || m.Status <= FloorFresh, "status %d", m.Status)
	m.Floor = r.u64("floor")
	r.check("floor", r.err != nil || m.Status != FloorUnknown || m.Floor == 0, "floor %d with status unknown", m.Floor)
	r.check("floor", r.err != nil || m.Status != FloorFresh || m.Floor != 0, "floor 0 with status fresh")
}
