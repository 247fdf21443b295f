package session

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"reflect"
	"unsafe"
)

// HKDF labels of the key schedule (section 6.3).
const (
	labelSecret = "momgate session v1 secret"
	labelRekey  = "momgate session v1 rekey"
	labelI2R    = "momgate session v1 i2r"
	labelR2I    = "momgate session v1 r2i"
)

// KeySize is the size of session secrets and record keys.
const KeySize = 32

// InitialSecret is S0 of section 6.3: HKDF-SHA256 with the transcript hash
// as salt over the two shares, then (when present) the ephemeral DH output
// and the static identity DH output.
func InitialSecret(th *[32]byte, initShare, respShare *[32]byte, ee, ss *[KeySize]byte) [KeySize]byte {
	ikm := make([]byte, 0, 4*KeySize)
	ikm = append(ikm, initShare[:]...)
	ikm = append(ikm, respShare[:]...)
	if ee != nil {
		ikm = append(ikm, ee[:]...)
	}
	if ss != nil {
		ikm = append(ikm, ss[:]...)
	}
	prk := extract(th[:], ikm)
	clear(ikm)
	out := expand(prk[:], []byte(labelSecret))
	clear(prk[:])
	return out
}

// NextSecret is S(g) from S(g-1) (section 6.6): HKDF-SHA256 with the
// previous secret as salt over the rekey's DH output (empty under Auth),
// the info naming the generation and both ephemeral public keys.
func NextSecret(prev *[KeySize]byte, gen uint64, initEph, respEph *[32]byte, dh *[KeySize]byte) [KeySize]byte {
	var ikm []byte
	if dh != nil {
		ikm = dh[:]
	}
	info := make([]byte, 0, len(labelRekey)+8+64)
	info = append(info, labelRekey...)
	info = binary.BigEndian.AppendUint64(info, gen)
	info = append(info, initEph[:]...)
	info = append(info, respEph[:]...)
	prk := extract(prev[:], ikm)
	out := expand(prk[:], info)
	clear(prk[:])
	return out
}

// DirectionKeys derives the record keys of one generation from its secret:
// initiator to responder, and responder to initiator.
func DirectionKeys(s *[KeySize]byte) (i2r, r2i [KeySize]byte) {
	h := hmac.New(sha256.New, s[:])
	expandWith(h, []byte(labelI2R), &i2r)
	h.Reset()
	expandWith(h, []byte(labelR2I), &r2i)
	return i2r, r2i
}

// The HKDF-SHA256 steps (RFC 5869) of the schedule, with crypto/hmac:
// every output is one hash long, so HKDF-Expand(PRK, info, 32) is its first
// block, T(1) = HMAC(PRK, info | 0x01), and the two Expands of a generation
// share one HMAC keyed with its secret (a key setup costs two SHA-256
// blocks; hkdf.Expand makes one per call). TestScheduleMatchesHKDF checks
// them against golang.org/x/crypto/hkdf.

// extract is HKDF-Extract(salt, ikm) = HMAC(salt, ikm).
func extract(salt, ikm []byte) [KeySize]byte {
	h := hmac.New(sha256.New, salt)
	h.Write(ikm)
	var out [KeySize]byte
	sumInto(h, &out)
	return out
}

// expand is HKDF-Expand(prk, info, 32).
func expand(prk, info []byte) [KeySize]byte {
	var out [KeySize]byte
	expandWith(hmac.New(sha256.New, prk), info, &out)
	return out
}

// hkdfFirstBlock is the counter byte of T(1).
var hkdfFirstBlock = []byte{1}

// expandWith is HKDF-Expand(prk, info, 32) with h an HMAC keyed by prk,
// new or Reset (a Reset of a new HMAC would only cost allocations).
func expandWith(h hash.Hash, info []byte, out *[KeySize]byte) {
	h.Write(info)
	h.Write(hkdfFirstBlock)
	sumInto(h, out)
}

// sumInto writes h's sum to out and erases the copy Sum made.
func sumInto(h hash.Hash, out *[KeySize]byte) {
	s := h.Sum(nil)
	copy(out[:], s)
	clear(s)
}

// ephemeral is an X25519 key pair: its private half lives only inside
// key (crypto/ecdh), which computes the public half once when made, so an
// exchange with it costs one scalar multiplication (curve25519.X25519 on
// raw bytes makes an ecdh key, and with it the public half, every call:
// two multiplications per exchange, four per key pair and exchange).
type ephemeral struct {
	key *ecdh.PrivateKey
	pub [32]byte
}

// newEphemeral draws a private key from rnd (32 bytes, as RFC 7748 takes
// them) and computes its public key.
func newEphemeral(rnd io.Reader) (ephemeral, error) {
	var e ephemeral
	var b [32]byte
	defer clear(b[:])
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return e, fmt.Errorf("ephemeral key: %w", err)
	}
	k, err := ecdh.X25519().NewPrivateKey(b[:])
	if err != nil {
		return e, fmt.Errorf("ephemeral key: %w", err)
	}
	e.key = k
	copy(e.pub[:], k.PublicKey().Bytes())
	return e, nil
}

// shared is X25519(e, peer): one scalar multiplication. A low-order peer
// key (an all-zero output) is an error; so is an erased key.
func (e *ephemeral) shared(peer *[32]byte) ([KeySize]byte, error) {
	var out [KeySize]byte
	if e.key == nil {
		return out, errors.New("x25519: the ephemeral key was erased")
	}
	return ecdhShared(e.key, peer)
}

// ecdhShared is X25519(k, peer), the output copied out and erased where
// crypto/ecdh put it.
func ecdhShared(k *ecdh.PrivateKey, peer *[32]byte) ([KeySize]byte, error) {
	var out [KeySize]byte
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return out, fmt.Errorf("x25519 with the peer's key: %v", err)
	}
	s, err := k.ECDH(pub)
	if err != nil {
		return out, fmt.Errorf("x25519 with the peer's key: %v", err)
	}
	copy(out[:], s)
	clear(s)
	return out, nil
}

// shared is X25519(priv, peer) for a private key held as bytes (the
// identity keys of the control binding); a low-order peer key is an error.
// It costs two scalar multiplications (crypto/ecdh computes the public half
// of a key it is given), once per control connection.
func shared(priv, peer *[32]byte) ([KeySize]byte, error) {
	var out [KeySize]byte
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		return out, fmt.Errorf("x25519: %v", err)
	}
	defer wipeECDHKey(k)
	return ecdhShared(k, peer)
}

// zero erases the private key (nil-safe, idempotent).
func (e *ephemeral) zero() {
	if e.key != nil {
		wipeECDHKey(e.key)
		e.key = nil
	}
}

// wipeECDHKey overwrites the private scalar inside a crypto/ecdh key, which
// has no method for it: the key is unusable afterwards. It finds the field
// by name, so that a change of crypto/ecdh's layout makes it erase nothing
// rather than something else; TestWipeECDHKey fails then.
func wipeECDHKey(k *ecdh.PrivateKey) {
	f := reflect.ValueOf(k).Elem().FieldByName("privateKey")
	if !f.IsValid() || f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Uint8 {
		return
	}
	clear(unsafe.Slice((*byte)(f.UnsafePointer()), f.Len()))
}
