package proto

import (
	"encoding/binary"
)

// Field limits (docs/PROTOCOL.md section 2.1).
const (
	MaxNameLen       = 64
	MaxReasonLen     = 1024
	MaxSealedLen     = 512
	MaxWrappedKeys   = 8
	MaxHeldKeys      = 8
	MaxNodeEntries   = (MaxFrameSize - HeaderSize - 3) / 32 // 32,767: as many 32-byte entries as one frame holds
	MaxClusterRuns   = (MaxFrameSize - HeaderSize - 4) / 8  // 131,070: as many runs as one frame holds
	WrappedKeySize   = 82
	WrappedSealedLen = 53
	PingSealedLen    = 88
	ReplySealedLen   = 104
)

// Message is one decoded frame body.
type Message interface {
	Type() Type
	Version() Version
	// AppendBody appends the encoded body (no header).
	AppendBody([]byte) []byte
	decode(*reader)
}

// orV2 returns v, or V2 for the zero Version.
func orV2(v Version) Version {
	if v == 0 {
		return V2
	}
	return v
}

type v2 struct{}

// Version returns V2.
func (v2) Version() Version { return V2 }

type v1 struct{}

// Version returns V1.
func (v1) Version() Version { return V1 }

// ServerHello is the first frame on a control connection.
type ServerHello struct {
	v2
	ServerID  NodeID
	ServerKey [32]byte
	Challenge [32]byte
	Mode      Mode
	Versions  uint8
}

// Type returns TypeServerHello.
func (*ServerHello) Type() Type { return TypeServerHello }

// AppendBody encodes the body.
func (m *ServerHello) AppendBody(b []byte) []byte {
	b = append(b, m.ServerID[:]...)
	b = append(b, m.ServerKey[:]...)
	b = append(b, m.Challenge[:]...)
	b = append(b, byte(m.Mode), m.Versions)
	return append(b, make([]byte, 30)...)
}

func (m *ServerHello) decode(r *reader) {
	r.fixed(m.ServerID[:], "server id")
	r.fixed(m.ServerKey[:], "server key")
	r.fixed(m.Challenge[:], "challenge")
	m.Mode = Mode(r.u8("mode"))
	r.check("mode", r.err != nil || m.Mode.Valid(), "mode %d", m.Mode)
	m.Versions = r.u8("versions")
	res := r.take(30, "reserved")
	for _, c := range res {
		if c != 0 {
			r.check("reserved", false, "nonzero reserved byte")
			break
		}
	}
}

// Enroll is a new MOM's first message: token id, identity and sealed proof.
type Enroll struct {
	v2
	TokenID [16]byte
	NodeKey [32]byte
	Nonce   [24]byte
	Sealed  []byte // nacl/box of EnrollProof
}

// Type returns TypeEnroll.
func (*Enroll) Type() Type { return TypeEnroll }

// AppendBody encodes the body.
func (m *Enroll) AppendBody(b []byte) []byte {
	b = append(b, m.TokenID[:]...)
	b = append(b, m.NodeKey[:]...)
	b = append(b, m.Nonce[:]...)
	return appendBytes16(b, m.Sealed)
}

func (m *Enroll) decode(r *reader) {
	r.fixed(m.TokenID[:], "token id")
	r.fixed(m.NodeKey[:], "node key")
	r.fixed(m.Nonce[:], "nonce")
	m.Sealed = r.bytes16(MaxSealedLen, "sealed proof")
}

// Hello is a returning MOM's first message: node id and sealed proof.
type Hello struct {
	v2
	NodeID NodeID
	Nonce  [24]byte
	Sealed []byte // nacl/box of HelloProof
}

// Type returns TypeHello.
func (*Hello) Type() Type { return TypeHello }

// AppendBody encodes the body.
func (m *Hello) AppendBody(b []byte) []byte {
	b = append(b, m.NodeID[:]...)
	b = append(b, m.Nonce[:]...)
	return appendBytes16(b, m.Sealed)
}

func (m *Hello) decode(r *reader) {
	r.fixed(m.NodeID[:], "node id")
	r.fixed(m.Nonce[:], "nonce")
	m.Sealed = r.bytes16(MaxSealedLen, "sealed proof")
}

// WrappedKey is a cluster key sealed for one node's identity key.
type WrappedKey struct {
	KeyID  uint32
	State  uint8 // 1 next, 2 active, 3 previous
	Nonce  [24]byte
	Sealed [WrappedSealedLen]byte
}

func (w *WrappedKey) append(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, w.KeyID)
	b = append(b, w.State)
	b = append(b, w.Nonce[:]...)
	return append(b, w.Sealed[:]...)
}

func (w *WrappedKey) decode(r *reader) {
	w.KeyID = r.u32("key id")
	r.check("key id", r.err != nil || w.KeyID != 0, "key id 0")
	w.State = r.u8("key state")
	r.check("key state", r.err != nil || (w.State >= 1 && w.State <= 3), "key state %d", w.State)
	r.fixed(w.Nonce[:], "key nonce")
	r.fixed(w.Sealed[:], "sealed key")
}

// Welcome admits a MOM: its node id and name, the mode, its wrapped keys,
// and, for a MOM that speaks sealed sessions, the session trailer.
type Welcome struct {
	v2
	NodeID  NodeID
	Name    string
	Mode    Mode
	Keys    []WrappedKey
	Session *WelcomeSession // nil: not sent (the MOM did not offer sessions)
}

// Type returns TypeWelcome.
func (*Welcome) Type() Type { return TypeWelcome }

// AppendBody encodes the body.
func (m *Welcome) AppendBody(b []byte) []byte {
	b = append(b, m.NodeID[:]...)
	b = appendStr(b, m.Name)
	b = append(b, byte(m.Mode), byte(len(m.Keys)))
	for i := range m.Keys {
		b = m.Keys[i].append(b)
	}
	if m.Session != nil {
		b = m.Session.append(b)
	}
	return b
}

func (m *Welcome) decode(r *reader) {
	r.fixed(m.NodeID[:], "node id")
	m.Name = r.str(MaxNameLen, "node name")
	m.Mode = Mode(r.u8("mode"))
	r.check("mode", r.err != nil || m.Mode.Valid(), "mode %d", m.Mode)
	n := r.count(1, MaxWrappedKeys, WrappedKeySize, "key count")
	if n > 0 {
		m.Keys = make([]WrappedKey, n)
	}
	for i := 0; i < n; i++ {
		m.Keys[i].decode(r)
	}
	if r.err == nil && len(r.b) > 0 { // the session trailer, exactly
		m.Session = &WelcomeSession{}
		m.Session.decode(r)
	}
}

// Reject refuses something, with a code and a reason.
type Reject struct {
	Ver    Version // V1 or V2; zero means V2
	Code   RejectCode
	Reason string
}

// Version returns the frame version.
func (m *Reject) Version() Version { return orV2(m.Ver) }

// Type returns TypeReject.
func (*Reject) Type() Type { return TypeReject }

// AppendBody encodes the body.
func (m *Reject) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(m.Code))
	reason := m.Reason
	if len(reason) > MaxReasonLen {
		reason = reason[:MaxReasonLen]
	}
	return appendStr(b, reason)
}

func (m *Reject) decode(r *reader) {
	m.Code = RejectCode(r.u16("code"))
	m.Reason = r.str(MaxReasonLen, "reason")
}

// Ping is a sealed PING (docs/PROTOCOL.md section 3); package ping opens it.
type Ping struct {
	v2
	KeyID  uint32
	Nonce  [24]byte
	Sealed [PingSealedLen]byte
}

// Type returns TypePing.
func (*Ping) Type() Type { return TypePing }

// AppendBody encodes the body.
func (m *Ping) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.KeyID)
	b = append(b, m.Nonce[:]...)
	return append(b, m.Sealed[:]...)
}

func (m *Ping) decode(r *reader) {
	m.KeyID = r.u32("key id")
	r.fixed(m.Nonce[:], "nonce")
	r.fixed(m.Sealed[:], "sealed")
}

// PingReply is a sealed PING that echoes the initiator's random bytes.
type PingReply struct {
	v2
	KeyID  uint32
	Nonce  [24]byte
	Sealed [ReplySealedLen]byte
}

// Type returns TypePingReply.
func (*PingReply) Type() Type { return TypePingReply }

// AppendBody encodes the body.
func (m *PingReply) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.KeyID)
	b = append(b, m.Nonce[:]...)
	return append(b, m.Sealed[:]...)
}

func (m *PingReply) decode(r *reader) {
	m.KeyID = r.u32("key id")
	r.fixed(m.Nonce[:], "nonce")
	r.fixed(m.Sealed[:], "sealed")
}

// KeyUpdate pushes the next cluster key, wrapped for the receiving node.
type KeyUpdate struct {
	v2
	Rotation uint64
	Key      WrappedKey
}

// Type returns TypeKeyUpdate.
func (*KeyUpdate) Type() Type { return TypeKeyUpdate }

// AppendBody encodes the body.
func (m *KeyUpdate) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, m.Rotation)
	return m.Key.append(b)
}

func (m *KeyUpdate) decode(r *reader) {
	m.Rotation = r.u64("rotation")
	m.Key.decode(r)
}

// KeyAck acknowledges a KeyUpdate.
type KeyAck struct {
	v2
	Rotation uint64
	KeyID    uint32
	Status   uint8 // 0 stored, 1 failed
}

// Type returns TypeKeyAck.
func (*KeyAck) Type() Type { return TypeKeyAck }

// AppendBody encodes the body.
func (m *KeyAck) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, m.Rotation)
	b = binary.BigEndian.AppendUint32(b, m.KeyID)
	return append(b, m.Status)
}

func (m *KeyAck) decode(r *reader) {
	m.Rotation = r.u64("rotation")
	m.KeyID = r.u32("key id")
	m.Status = r.u8("status")
	r.check("status", r.err != nil || m.Status <= 1, "status %d", m.Status)
}

// KeyActivate tells a MOM to seal with a key from now on.
type KeyActivate struct {
	v2
	Rotation uint64
	KeyID    uint32
}

// Type returns TypeKeyActivate.
func (*KeyActivate) Type() Type { return TypeKeyActivate }

// AppendBody encodes the body.
func (m *KeyActivate) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, m.Rotation)
	return binary.BigEndian.AppendUint32(b, m.KeyID)
}

func (m *KeyActivate) decode(r *reader) {
	m.Rotation = r.u64("rotation")
	m.KeyID = r.u32("key id")
}

// KeyRetire tells a MOM to stop accepting a key and zero it.
type KeyRetire struct {
	v2
	Rotation uint64
	KeyID    uint32
}

// Type returns TypeKeyRetire.
func (*KeyRetire) Type() Type { return TypeKeyRetire }

// AppendBody encodes the body.
func (m *KeyRetire) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, m.Rotation)
	return binary.BigEndian.AppendUint32(b, m.KeyID)
}

func (m *KeyRetire) decode(r *reader) {
	m.Rotation = r.u64("rotation")
	m.KeyID = r.u32("key id")
}

func appendEntries(b []byte, es []NodeAddr) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(es)))
	for _, e := range es {
		b = append(b, e.Node[:]...)
		b = append(b, e.Addr[:]...)
	}
	return b
}

func decodeEntries(r *reader) []NodeAddr {
	n := r.count(2, MaxNodeEntries, 32, "entry count")
	if n == 0 {
		return nil
	}
	es := make([]NodeAddr, n)
	for i := range es {
		r.fixed(es[i].Node[:], "node id")
		r.fixed(es[i].Addr[:], "addr")
	}
	return es
}

// Deny tells MOMs to refuse these nodes from now on.
type Deny struct {
	v2
	Entries []NodeAddr
}

// Type returns TypeDeny.
func (*Deny) Type() Type { return TypeDeny }

// AppendBody encodes the body.
func (m *Deny) AppendBody(b []byte) []byte { return appendEntries(b, m.Entries) }

func (m *Deny) decode(r *reader) { m.Entries = decodeEntries(r) }

// DenySet is the server's whole deny list: the MOM replaces its own with
// it (sent after every Welcome on a control connection).
type DenySet struct {
	v2
	Entries []NodeAddr
}

// Type returns TypeDenySet.
func (*DenySet) Type() Type { return TypeDenySet }

// AppendBody encodes the body.
func (m *DenySet) AppendBody(b []byte) []byte { return appendEntries(b, m.Entries) }

func (m *DenySet) decode(r *reader) { m.Entries = decodeEntries(r) }

// DenyLift tells MOMs to lift these denies: the server has given the
// addresses (or nodes) to a node again. It carries only the change, where
// a DenySet would carry the whole list.
type DenyLift struct {
	v2
	Entries []NodeAddr
}

// Type returns TypeDenyLift.
func (*DenyLift) Type() Type { return TypeDenyLift }

// AppendBody encodes the body.
func (m *DenyLift) AppendBody(b []byte) []byte { return appendEntries(b, m.Entries) }

func (m *DenyLift) decode(r *reader) { m.Entries = decodeEntries(r) }

// Operations of a NodeUpgraded message.
const (
	UpgradedAdd     uint8 = 1 // these nodes are upgraded from now on
	UpgradedRemove  uint8 = 2 // an administrator rolled these nodes back
	UpgradedReplace uint8 = 3 // the complete set: replaces what the MOM holds
)

// NodeUpgraded tells MOMs these nodes speak PING: refuse legacy admission.
type NodeUpgraded struct {
	v2
	Op      uint8 // UpgradedAdd, UpgradedRemove or UpgradedReplace
	Entries []NodeAddr
}

// Type returns TypeNodeUpgraded.
func (*NodeUpgraded) Type() Type { return TypeNodeUpgraded }

// AppendBody encodes the body.
func (m *NodeUpgraded) AppendBody(b []byte) []byte { return appendOpEntries(b, m.Op, m.Entries) }

func (m *NodeUpgraded) decode(r *reader) { m.Op, m.Entries = decodeOpEntries(r) }

// appendOpEntries encodes the body of NodeUpgraded and SealedNodes: an op
// (add, remove, replace) and entries.
func appendOpEntries(b []byte, op uint8, es []NodeAddr) []byte {
	return appendEntries(append(b, op), es)
}

func decodeOpEntries(r *reader) (uint8, []NodeAddr) {
	op := r.u8("op")
	r.check("op", r.err != nil || (op >= UpgradedAdd && op <= UpgradedReplace), "op %d", op)
	return op, decodeEntries(r)
}

// ModeMsg carries the server's protocol mode (message type Mode).
type ModeMsg struct {
	Ver  Version // V1 or V2; zero means V2
	Mode Mode
}

// Version returns the frame version.
func (m *ModeMsg) Version() Version { return orV2(m.Ver) }

// Type returns TypeMode.
func (*ModeMsg) Type() Type { return TypeMode }

// AppendBody encodes the body.
func (m *ModeMsg) AppendBody(b []byte) []byte { return append(b, byte(m.Mode)) }

func (m *ModeMsg) decode(r *reader) {
	m.Mode = Mode(r.u8("mode"))
	r.check("mode", r.err != nil || m.Mode.Valid(), "mode %d", m.Mode)
}

// LegacyHello registers a legacy MOM with the server. Name may be empty:
// the server then knows the MOM by its source address, as OpenPBS does.
type LegacyHello struct {
	v1
	Name     string
	IMPort   uint16
	Versions uint8 // versions the MOM speaks (VersionBit mask); V1 at least
}

// Type returns TypeLegacyHello.
func (*LegacyHello) Type() Type { return TypeLegacyHello }

// AppendBody encodes the body.
func (m *LegacyHello) AppendBody(b []byte) []byte {
	b = appendStr(b, m.Name)
	b = binary.BigEndian.AppendUint16(b, m.IMPort)
	return append(b, m.Versions)
}

func (m *LegacyHello) decode(r *reader) {
	m.Name = r.str(MaxNameLen, "node name")
	m.IMPort = r.u16("im port")
	m.Versions = r.u8("versions")
	r.check("versions", r.err != nil || m.Versions&VersionBitV1 != 0, "versions %#02x without v1", m.Versions)
}

// IMJoin joins a sister to a job.
type IMJoin struct {
	Ver    Version // V1 or V2; zero means V2
	Job    string
	Mother string
}

// Version returns the frame version.
func (m *IMJoin) Version() Version { return orV2(m.Ver) }

// Type returns TypeIMJoin.
func (*IMJoin) Type() Type { return TypeIMJoin }

// AppendBody encodes the body.
func (m *IMJoin) AppendBody(b []byte) []byte {
	b = appendStr(b, m.Job)
	return appendStr(b, m.Mother)
}

func (m *IMJoin) decode(r *reader) {
	m.Job = r.str(MaxNameLen, "job")
	m.Mother = r.str(MaxNameLen, "mother superior")
}

// IMPoll polls a sister for a job.
type IMPoll struct {
	Ver Version // V1 or V2; zero means V2
	Job string
	Seq uint64
}

// Version returns the frame version.
func (m *IMPoll) Version() Version { return orV2(m.Ver) }

// Type returns TypeIMPoll.
func (*IMPoll) Type() Type { return TypeIMPoll }

// AppendBody encodes the body.
func (m *IMPoll) AppendBody(b []byte) []byte {
	b = appendStr(b, m.Job)
	return binary.BigEndian.AppendUint64(b, m.Seq)
}

func (m *IMPoll) decode(r *reader) {
	m.Job = r.str(MaxNameLen, "job")
	m.Seq = r.u64("sequence")
}

// IM reply statuses.
const (
	IMOK         uint8 = 0
	IMUnknownJob uint8 = 1
	IMRefused    uint8 = 2
)

// IMReply answers IMJoin or IMPoll.
type IMReply struct {
	Ver    Version // V1 or V2; zero means V2
	Job    string
	Seq    uint64
	Status uint8
}

// Version returns the frame version.
func (m *IMReply) Version() Version { return orV2(m.Ver) }

// Type returns TypeIMReply.
func (*IMReply) Type() Type { return TypeIMReply }

// AppendBody encodes the body.
func (m *IMReply) AppendBody(b []byte) []byte {
	b = appendStr(b, m.Job)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	return append(b, m.Status)
}

func (m *IMReply) decode(r *reader) {
	m.Job = r.str(MaxNameLen, "job")
	m.Seq = r.u64("sequence")
	m.Status = r.u8("status")
	r.check("status", r.err != nil || m.Status <= IMRefused, "status %d", m.Status)
}

// NodeLookup asks the server for a node's IM address, by name.
type NodeLookup struct {
	Ver  Version // V1 or V2; zero means V2
	ID   uint32  // chosen by the MOM, echoed in the NodeAddress
	Name string
}

// Version returns the frame version.
func (m *NodeLookup) Version() Version { return orV2(m.Ver) }

// Type returns TypeNodeLookup.
func (*NodeLookup) Type() Type { return TypeNodeLookup }

// AppendBody encodes the body.
func (m *NodeLookup) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.ID)
	return appendStr(b, m.Name)
}

func (m *NodeLookup) decode(r *reader) {
	m.ID = r.u32("lookup id")
	m.Name = r.str(MaxNameLen, "node name")
}

// NodeAddress statuses.
const (
	LookupFound   uint8 = 0
	LookupUnknown uint8 = 1
)

// NodeAddress answers a NodeLookup.
type NodeAddress struct {
	Ver    Version // V1 or V2; zero means V2
	ID     uint32  // the NodeLookup's id
	Name   string
	Status uint8 // LookupFound or LookupUnknown
	Addr   Addr
	Port   uint16
}

// Version returns the frame version.
func (m *NodeAddress) Version() Version { return orV2(m.Ver) }

// Type returns TypeNodeAddress.
func (*NodeAddress) Type() Type { return TypeNodeAddress }

// AppendBody encodes the body.
func (m *NodeAddress) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, m.ID)
	b = appendStr(b, m.Name)
	b = append(b, m.Status)
	b = append(b, m.Addr[:]...)
	return binary.BigEndian.AppendUint16(b, m.Port)
}

func (m *NodeAddress) decode(r *reader) {
	m.ID = r.u32("lookup id")
	m.Name = r.str(MaxNameLen, "node name")
	m.Status = r.u8("status")
	r.check("status", r.err != nil || m.Status <= LookupUnknown, "status %d", m.Status)
	r.fixed(m.Addr[:], "addr")
	m.Port = r.u16("port")
}
