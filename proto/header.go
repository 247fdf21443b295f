// Package proto is momgate's wire format (docs/PROTOCOL.md sections 1 and
// 2): length-prefixed, versioned frames and one type per message, with
// strict decoders and hard size limits. It does no crypto and no I/O
// beyond io.Reader and io.Writer.
package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame constants.
const (
	Magic        uint16 = 0x4D47 // "MG"
	HeaderSize          = 8
	MaxFrameSize        = 1 << 20
)

// Version is a protocol version.
type Version uint8

// Protocol versions.
const (
	V1 Version = 1 // legacy: CLUSTERADDR-style address-list push
	V2 Version = 2 // PING
)

// Version bits of the versions fields of ServerHello, EnrollProof and HelloProof.
const (
	VersionBitV1 uint8 = 1 << 1
	VersionBitV2 uint8 = 1 << 2
)

// Decoding errors; every decoder error wraps exactly one of them.
var (
	ErrTruncated          = errors.New("truncated")
	ErrBadMagic           = errors.New("bad magic")
	ErrUnsupportedVersion = errors.New("unsupported protocol version")
	ErrOversize           = errors.New("frame too large")
	ErrUnknownType        = errors.New("unknown message type")
	ErrTrailing           = errors.New("trailing bytes")
	ErrCountLimit         = errors.New("count over limit")
	ErrFieldTooLong       = errors.New("field too long")
	ErrBadValue           = errors.New("bad value")
	// ErrEncode means a message cannot be sent: the peer would refuse it.
	ErrEncode = errors.New("message cannot be encoded")
)

// Header is the 8-byte frame header.
type Header struct {
	Version Version
	Type    Type
	Length  uint32 // body length
}

// ParseHeader checks and decodes a frame header from the start of b, in the
// order of docs/PROTOCOL.md section 1. It does not allocate.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrTruncated
	}
	if binary.BigEndian.Uint16(b) != Magic {
		return Header{}, ErrBadMagic
	}
	h := Header{Version: Version(b[2]), Type: Type(b[3]), Length: binary.BigEndian.Uint32(b[4:8])}
	if h.Version != V1 && h.Version != V2 {
		return h, ErrUnsupportedVersion
	}
	if uint64(h.Length)+HeaderSize > MaxFrameSize {
		return h, ErrOversize
	}
	if !h.Type.validIn(h.Version) {
		return h, ErrUnknownType
	}
	return h, nil
}

// AppendHeader appends h to b.
func AppendHeader(b []byte, h Header) []byte {
	b = binary.BigEndian.AppendUint16(b, Magic)
	b = append(b, byte(h.Version), byte(h.Type))
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// Put writes h into the first HeaderSize bytes of b.
func (h Header) Put(b []byte) {
	AppendHeader(b[:0], h)
}

func (h Header) String() string {
	return fmt.Sprintf("v%d %s (%d bytes)", h.Version, h.Type, h.Length)
}
