package handshake

import (
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// The wire form of a wrapped cluster key (docs/PROTOCOL.md section 2.1,
// WrappedKey) and package keys' form are the same fields: one conversion
// each way, for Welcome and KeyUpdate.

// ToWire converts a wrapped key to its wire form.
func ToWire(w keys.WrappedKey) proto.WrappedKey {
	return proto.WrappedKey{KeyID: uint32(w.ID), State: uint8(w.State), Nonce: w.Nonce, Sealed: w.Sealed}
}

// FromWire converts a wire WrappedKey.
func FromWire(w proto.WrappedKey) keys.WrappedKey {
	return keys.WrappedKey{ID: keys.KeyID(w.KeyID), State: keys.State(w.State), Nonce: w.Nonce, Sealed: w.Sealed}
}
