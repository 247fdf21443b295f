package proto

import (
	"fmt"
	"net/netip"
	"strings"
)

// Type is a message type.
type Type uint8

// Message types (docs/PROTOCOL.md section 2).
const (
	TypeServerHello    Type = 0x01
	TypeEnroll         Type = 0x02
	TypeHello          Type = 0x03
	TypeWelcome        Type = 0x04
	TypeReject         Type = 0x05
	TypeNotLeader      Type = 0x06 // a follower of a server group redirects a MOM (section 4.11)
	TypePing           Type = 0x10
	TypePingReply      Type = 0x11
	TypeSessionPing    Type = 0x12 // Ping with the session extension (section 6)
	TypeSessionReply   Type = 0x13 // PingReply with the session extension
	TypeKeyUpdate      Type = 0x20
	TypeKeyAck         Type = 0x21
	TypeKeyActivate    Type = 0x22
	TypeKeyRetire      Type = 0x23
	TypeDeny           Type = 0x24
	TypeMode           Type = 0x25
	TypeNodeUpgraded   Type = 0x26
	TypeDenySet        Type = 0x27
	TypeDenyLift       Type = 0x28
	TypeIMSecurity     Type = 0x29 // sealed control sessions only (section 6.7)
	TypeSealedNodes    Type = 0x2a // sealed control sessions only (section 6.7)
	TypeFloorProbe     Type = 0x2b // sealed control sessions only (section 4.9)
	TypeLegacyHello    Type = 0x30
	TypeClusterAddrs   Type = 0x31
	TypeIMJoin         Type = 0x40
	TypeIMPoll         Type = 0x41
	TypeIMReply        Type = 0x42
	TypeNodeLookup     Type = 0x50
	TypeNodeAddress    Type = 0x51
	TypeFloorLookup    Type = 0x52
	TypeFloorAnswer    Type = 0x53
	TypeNameLookup     Type = 0x54
	TypeNodeName       Type = 0x55
	TypeRecoveryLookup Type = 0x56 // sealed control sessions only (section 4.9)
	TypeFloorStamp     Type = 0x57 // sealed control sessions only (section 4.9)
)

type typeInfo struct {
	name     string
	versions uint8 // VersionBit mask
}

var typeTable = [256]typeInfo{
	TypeServerHello:    {"ServerHello", VersionBitV2},
	TypeEnroll:         {"Enroll", VersionBitV2},
	TypeHello:          {"Hello", VersionBitV2},
	TypeWelcome:        {"Welcome", VersionBitV2},
	TypeReject:         {"Reject", VersionBitV1 | VersionBitV2},
	TypeNotLeader:      {"NotLeader", VersionBitV2},
	TypePing:           {"Ping", VersionBitV2},
	TypePingReply:      {"PingReply", VersionBitV2},
	TypeSessionPing:    {"SessionPing", VersionBitV2},
	TypeSessionReply:   {"SessionReply", VersionBitV2},
	TypeKeyUpdate:      {"KeyUpdate", VersionBitV2},
	TypeKeyAck:         {"KeyAck", VersionBitV2},
	TypeKeyActivate:    {"KeyActivate", VersionBitV2},
	TypeKeyRetire:      {"KeyRetire", VersionBitV2},
	TypeDeny:           {"Deny", VersionBitV2},
	TypeMode:           {"Mode", VersionBitV1 | VersionBitV2},
	TypeNodeUpgraded:   {"NodeUpgraded", VersionBitV2},
	TypeDenySet:        {"DenySet", VersionBitV2},
	TypeDenyLift:       {"DenyLift", VersionBitV2},
	TypeIMSecurity:     {"IMSecurity", VersionBitV2},
	TypeSealedNodes:    {"SealedNodes", VersionBitV2},
	TypeFloorProbe:     {"FloorProbe", VersionBitV2},
	TypeLegacyHello:    {"LegacyHello", VersionBitV1},
	TypeClusterAddrs:   {"ClusterAddrs", VersionBitV1},
	TypeIMJoin:         {"IMJoin", VersionBitV1 | VersionBitV2},
	TypeIMPoll:         {"IMPoll", VersionBitV1 | VersionBitV2},
	TypeIMReply:        {"IMReply", VersionBitV1 | VersionBitV2},
	TypeNodeLookup:     {"NodeLookup", VersionBitV1 | VersionBitV2},
	TypeNodeAddress:    {"NodeAddress", VersionBitV1 | VersionBitV2},
	TypeFloorLookup:    {"FloorLookup", VersionBitV2},
	TypeFloorAnswer:    {"FloorAnswer", VersionBitV2},
	TypeNameLookup:     {"NameLookup", VersionBitV2},
	TypeNodeName:       {"NodeName", VersionBitV2},
	TypeRecoveryLookup: {"RecoveryLookup", VersionBitV2},
	TypeFloorStamp:     {"FloorStamp", VersionBitV2},
}

func (t Type) validIn(v Version) bool {
	return typeTable[t].versions&(1<<v) != 0
}

func (t Type) String() string {
	if info := typeTable[t]; info.name != "" {
		return info.name
	}
	return fmt.Sprintf("Type(0x%02x)", uint8(t))
}

// Mode is the server's protocol mode.
type Mode uint8

// Protocol modes.
const (
	ModeLegacy Mode = 1 // address-list push only
	ModeCompat Mode = 2 // address-list push and PING
	ModePing   Mode = 3 // PING only
)

var modeNames = map[Mode]string{ModeLegacy: "legacy", ModeCompat: "compat", ModePing: "ping"}

func (m Mode) String() string {
	if n, ok := modeNames[m]; ok {
		return n
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Valid reports whether m is a defined mode.
func (m Mode) Valid() bool { _, ok := modeNames[m]; return ok }

// ParseMode parses "legacy", "compat" or "ping".
func ParseMode(s string) (Mode, error) {
	for m, n := range modeNames {
		if strings.EqualFold(s, n) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("mode %q: want legacy, compat or ping: %w", s, ErrBadValue)
}

// NodeID is a 16-byte node id (a UUID).
type NodeID [16]byte

// Addr is a 16-byte IP address, IPv4 in IPv4-mapped form.
type Addr [16]byte

// AddrFrom converts a netip.Addr (IPv4 is mapped).
func AddrFrom(a netip.Addr) Addr { return Addr(a.As16()) }

// ParseAddr parses an IP address literal.
func ParseAddr(s string) (Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return Addr{}, err
	}
	return AddrFrom(a), nil
}

// Netip returns the address, with IPv4 unmapped.
func (a Addr) Netip() netip.Addr { return netip.AddrFrom16(a).Unmap() }

func (a Addr) String() string { return a.Netip().String() }

// NodeAddr names a node and its address, in Deny, DenySet, DenyLift and
// NodeUpgraded.
type NodeAddr struct {
	Node NodeID
	Addr Addr
}
