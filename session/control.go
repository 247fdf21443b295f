package session

import (
	"encoding/binary"
	"fmt"

	"github.com/momgate/momgate/proto"
)

// Session control frames (section 6.6). They travel only inside records,
// never on their own, and a Session consumes them: the daemon never sees
// them. proto does not know their types.
const (
	// RekeyType offers the next generation: its number and, under
	// Encrypt, a fresh ephemeral X25519 public key.
	RekeyType proto.Type = 0x61
	// SwitchType ends a direction's generation: the sender's next record
	// is sealed under the next generation's key.
	SwitchType proto.Type = 0x62
)

// Control frame sizes, header included.
const (
	rekeyFrameSize  = proto.HeaderSize + 8 + 32
	switchFrameSize = proto.HeaderSize + 8
)

// Control is a decoded session control frame.
type Control struct {
	Type      proto.Type // RekeyType or SwitchType
	Gen       uint64     // the generation it moves to
	Ephemeral [32]byte   // Rekey: the sender's ephemeral public key (zero under Auth)
}

// isControl reports whether inner frame f (already checked by checkInner)
// is a session control frame.
func isControl(f []byte) bool {
	t := proto.Type(f[3])
	return t == RekeyType || t == SwitchType
}

// AppendControl appends the inner frame of c.
func AppendControl(dst []byte, c *Control) []byte {
	n := switchFrameSize
	if c.Type == RekeyType {
		n = rekeyFrameSize
	}
	dst = proto.AppendHeader(dst, proto.Header{Version: proto.V2, Type: c.Type, Length: uint32(n - proto.HeaderSize)})
	dst = binary.BigEndian.AppendUint64(dst, c.Gen)
	if c.Type == RekeyType {
		dst = append(dst, c.Ephemeral[:]...)
	}
	return dst
}

// DecodeControl strictly decodes a session control frame; every failure
// wraps ErrProtocol (the frame was authenticated: only the peer made it).
func DecodeControl(f []byte) (Control, error) {
	if len(f) < proto.HeaderSize || binary.BigEndian.Uint16(f) != proto.Magic {
		return Control{}, fmt.Errorf("control frame of %d bytes without a frame header: %w", len(f), ErrProtocol)
	}
	c := Control{Type: proto.Type(f[3])}
	want := 0
	switch c.Type {
	case RekeyType:
		want = rekeyFrameSize
	case SwitchType:
		want = switchFrameSize
	default:
		return Control{}, fmt.Errorf("frame type 0x%02x is not a session control frame: %w", f[3], ErrProtocol)
	}
	switch {
	case proto.Version(f[2]) != proto.V2:
		return Control{}, fmt.Errorf("control frame version %d: %w", f[2], ErrProtocol)
	case len(f) != want || int(binary.BigEndian.Uint32(f[4:8])) != want-proto.HeaderSize:
		return Control{}, fmt.Errorf("control frame 0x%02x of %d bytes, want %d: %w", f[3], len(f), want, ErrProtocol)
	}
	c.Gen = binary.BigEndian.Uint64(f[8:16])
	if c.Type == RekeyType {
		copy(c.Ephemeral[:], f[16:48])
	}
	return c, nil
}
