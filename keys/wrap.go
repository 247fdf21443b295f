package keys

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/nacl/box"
)

// Wrapping errors.
var (
	ErrUnwrap       = errors.New("wrapped key does not open (wrong node or server key, or tampered)")
	ErrWrapMismatch = errors.New("wrapped key's sealed id or state differs from its clear header")
)

const wrapPlainSize = 37 // id (4) | state (1) | secret (32)

// WrappedKey is a cluster key sealed from the server to one node
// (docs/PROTOCOL.md, WrappedKey).
type WrappedKey struct {
	ID     KeyID
	State  State
	Nonce  [24]byte
	Sealed [wrapPlainSize + box.Overhead]byte
}

func wrapPlain(k *Key, state State) [wrapPlainSize]byte {
	var p [wrapPlainSize]byte
	binary.BigEndian.PutUint32(p[0:4], uint32(k.ID))
	p[4] = byte(state)
	copy(p[5:], k.Secret[:])
	return p
}

// Wrapper wraps keys for one node with a precomputed shared key, so a
// rotation costs one X25519 per node; the same key opens what the node
// seals for the server (its Hello proof).
type Wrapper struct {
	shared  [32]byte
	nodePub [32]byte
}

// NewWrapper precomputes the box shared key of (nodePub, serverPriv); the
// node unwraps with (serverPub, nodePriv).
func NewWrapper(nodePub, serverPriv *[32]byte) *Wrapper {
	w := &Wrapper{nodePub: *nodePub}
	box.Precompute(&w.shared, nodePub, serverPriv)
	return w
}

// For reports whether w was made for the node identity key nodePub.
func (w *Wrapper) For(nodePub *[32]byte) bool {
	return subtle.ConstantTimeCompare(w.nodePub[:], nodePub[:]) == 1
}

// OpenFromNode opens a box the node sealed for the server (box.Seal with
// the server's public key and the node's private key), as box.Open would.
func (w *Wrapper) OpenFromNode(sealed []byte, nonce *[24]byte) ([]byte, bool) {
	return box.OpenAfterPrecomputation(nil, sealed, nonce, &w.shared)
}

// Wrap seals k in the given state with a random nonce.
func (w *Wrapper) Wrap(rnd io.Reader, k *Key, state State) (WrappedKey, error) {
	out := WrappedKey{ID: k.ID, State: state}
	if _, err := io.ReadFull(rnd, out.Nonce[:]); err != nil {
		return out, fmt.Errorf("wrap key %s: nonce: %w", k.ID, err)
	}
	p := wrapPlain(k, state)
	box.SealAfterPrecomputation(out.Sealed[:0], p[:], &out.Nonce, &w.shared)
	clear(p[:])
	return out, nil
}

// Unwrap opens w with the same shared key.
func (w *Wrapper) Unwrap(wk WrappedKey, now time.Time) (*Key, error) {
	var p [wrapPlainSize]byte
	if _, ok := box.OpenAfterPrecomputation(p[:0], wk.Sealed[:], &wk.Nonce, &w.shared); !ok {
		return nil, fmt.Errorf("unwrap key %s: %w", wk.ID, ErrUnwrap)
	}
	defer clear(p[:])
	if KeyID(binary.BigEndian.Uint32(p[0:4])) != wk.ID || State(p[4]) != wk.State {
		return nil, fmt.Errorf("unwrap key %s: %w", wk.ID, ErrWrapMismatch)
	}
	if wk.ID == 0 || wk.State < StateNext || wk.State > StatePrevious {
		return nil, fmt.Errorf("unwrap key %s in state %d: %w", wk.ID, wk.State, ErrBadTransition)
	}
	k := &Key{ID: wk.ID, State: wk.State, Created: now.UTC().Truncate(time.Second)}
	copy(k.Secret[:], p[5:])
	k.AEAD()
	return k, nil
}

// Wrap seals k for the node whose public key is nodePub, from the server.
func Wrap(rnd io.Reader, k *Key, state State, nodePub, serverPriv *[32]byte) (WrappedKey, error) {
	return NewWrapper(nodePub, serverPriv).Wrap(rnd, k, state)
}

// Unwrap opens a key the server (serverPub) wrapped for this node (nodePriv).
func Unwrap(wk WrappedKey, serverPub, nodePriv *[32]byte, now time.Time) (*Key, error) {
	return NewWrapper(serverPub, nodePriv).Unwrap(wk, now)
}
