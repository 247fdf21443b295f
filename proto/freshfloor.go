package proto

import "encoding/binary"

// The recovery attestation (docs/PROTOCOL.md section 4.9): a MOM that lost
// its replay marks asks with a RecoveryLookup; the server sends the sender
// a FloorProbe on the sender's sealed control session, the sender answers
// with a FloorStamp carrying a fresh stamp of its own stamper, and the
// server answers the lookup with a FloorAnswer of status FloorFresh. All
// three travel only on sealed control sessions of peers that proved the
// capability (VersionBitFloorProbe, WelcomeFloorProbe).

// VersionBitFloorProbe, in the versions byte of an EnrollProof or a
// HelloProof (inside the nacl/box), says the MOM answers FloorProbe and
// may send RecoveryLookup. Servers that predate it ignore the bit.
const VersionBitFloorProbe uint8 = 1 << 4

// WelcomeFloorProbe, in a WelcomeSessionProof's flags, says the server
// answers RecoveryLookup and may send FloorProbe. The server sets it only
// for a MOM whose proof set VersionBitFloorProbe.
const WelcomeFloorProbe uint8 = 1 << 1

// FloorFresh is the FloorAnswer status that answers a RecoveryLookup:
// Floor is a stamp the sender made after the lookup reached the server.
const FloorFresh uint8 = 2

// RecoveryLookup asks the server for a recovery attestation of a sender:
// a stamp the sender provably made after the lookup reached the server.
type RecoveryLookup struct {
	v2
	ID   uint32 // chosen by the MOM, echoed in the FloorAnswer
	Node NodeID // the sender
}

// Type returns TypeRecoveryLookup.
func (*RecoveryLookup) Type() Type { return TypeRecoveryLookup }

// AppendBody encodes the body.
func (m *RecoveryLookup) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.ID)
	return append(b, m.Node[:]...)
}

func (m *RecoveryLookup) decode(r *reader) {
	m.ID = r.u32("lookup id")
	r.fixed(m.Node[:], "node id")
}

// FloorProbe asks a MOM, on its sealed control session, for a fresh stamp
// (a FloorStamp with the same id).
type FloorProbe struct {
	v2
	ID uint32 // chosen by the server
}

// Type returns TypeFloorProbe.
func (*FloorProbe) Type() Type { return TypeFloorProbe }

// AppendBody encodes the body.
func (m *FloorProbe) AppendBody(b []byte) []byte { return binary.BigEndian.AppendUint32(b, m.ID) }

func (m *FloorProbe) decode(r *reader) { m.ID = r.u32("probe id") }

// FloorStamp answers a FloorProbe: Stamp is the next stamp of the MOM's
// stamper, so above every stamp of every PING it sealed before.
type FloorStamp struct {
	v2
	ID    uint32 // the FloorProbe's id
	Stamp uint64 // ns, never 0
}

// Type returns TypeFloorStamp.
func (*FloorStamp) Type() Type { return TypeFloorStamp }

// AppendBody encodes the body.
func (m *FloorStamp) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.ID)
	return binary.BigEndian.AppendUint64(b, m.Stamp)
}

func (m *FloorStamp) decode(r *reader) {
	m.ID = r.u32("probe id")
	m.Stamp = r.u64("stamp")
	r.check("stamp", r.err != nil || m.Stamp != 0, "stamp 0")
}
